"""Helpers for testing data-parallel training: the same tiny model and batch in every process, and a
gloo worker that computes the training loss and gradients on its share of the batch.

(Spawned workers must live in an importable module; pytest's importlib mode does not make test files one.)
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from model.backbones.base import TokenFeatures
from model.factory import create_model
from model.loss import ContrastiveObjective, same_caption_mask
from model.model_config import load_model_config
from model.training import training_loss

TINY_OFFLINE = {
    "d_model": 32,
    "embed_dim": 16,
    "heads": 4,
    "dropout": 0.0,
    "audio": {
        "dim": 24,
        "blocks": 1,
        "n_mels": 24,
        "max_seconds": 2.0,
        "dropout": 0.0,
        "prosody": False,
        "normalise": False,
    },
}
# captions shared by several items: same-caption exclusions must cross process boundaries
CAPTION_KEYS = [
    "calm male",
    "angry female",
    "calm male",
    "slow old man",
    "angry female",
    "calm male",
    "whisper",
]


def tiny_model():
    return create_model(load_model_config("fsclap-offline", TINY_OFFLINE), seed=0).train()


def token_batch(model, n: int, seed: int = 3):
    """Backbone-shaped token features (as cached for frozen encoders) with ragged masks."""
    g = torch.Generator().manual_seed(seed)
    a_len = torch.randint(2, 9, (n,), generator=g)
    t_len = torch.randint(1, 6, (n,), generator=g)
    audio = TokenFeatures(
        torch.randn(n, 8, model.backbone.audio_dim, generator=g),
        torch.arange(8)[None] < a_len[:, None],
    )
    text = TokenFeatures(
        torch.randn(n, 5, model.backbone.text_dim, generator=g),
        torch.arange(5)[None] < t_len[:, None],
    )
    return audio, text


def loss_and_grads(model, audio, text, keys, counts=None, wrapped=None):
    """(loss, {parameter: gradient}) of the trainer's objective for one forward of ``wrapped or model``."""
    exclude = same_caption_mask(keys)
    out = (wrapped or model)(audio, text, exclude, "none")
    loss = training_loss(ContrastiveObjective(), out, exclude, keys, counts)
    loss.total.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(loss.total), grads


def gathered_loss_worker(
    rank: int, world: int, init_file: str, split: list[int], out_file: str
) -> None:
    """One DDP process holding rows ``split[rank]`` of the batch; saves its loss and gradients."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = tiny_model()
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        audio, text = token_batch(model, len(CAPTION_KEYS))
        start = sum(split[:rank])
        rows = list(range(start, start + split[rank]))
        loss, grads = loss_and_grads(
            model,
            audio.select(rows),
            text.select(rows),
            [CAPTION_KEYS[i] for i in rows],
            counts=split,
            wrapped=ddp,
        )
        torch.save({"loss": loss, "grads": grads}, f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()

"""Data-parallel training gathers in-batch negatives across processes: two gloo processes holding parts
of a batch get exactly the loss and gradient of one process holding the whole batch (also for unequal
parts, as when a corrupt file shrinks one process's batch)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from fsclap.testing.distributed import (
    CAPTION_KEYS,
    gathered_loss_worker,
    loss_and_grads,
    tiny_model,
    token_batch,
)
from model.distributed import caption_codes
from model.loss import same_caption_mask, same_code_mask


@pytest.mark.parametrize("split", [[4, 3], [6, 1]], ids=["4+3", "6+1"])
def test_gathered_negatives_match_one_process(tmp_path: Path, split):
    mp.spawn(
        gathered_loss_worker,
        args=(2, str(tmp_path / "init"), split, str(tmp_path / "out")),
        nprocs=2,
        join=True,
    )
    model = tiny_model()
    audio, text = token_batch(model, len(CAPTION_KEYS))
    loss, grads = loss_and_grads(model, audio, text, CAPTION_KEYS)
    for rank in range(2):
        got = torch.load(tmp_path / f"out.{rank}", weights_only=True)
        assert got["loss"] == pytest.approx(loss, rel=1e-5)
        assert got["grads"].keys() == grads.keys() and len(grads) > 10
        for name, grad in grads.items():
            torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_local_negatives_differ_from_global():
    """The test above can fail: per-process negatives give another loss than the global batch."""
    model = tiny_model()
    audio, text = token_batch(model, len(CAPTION_KEYS))
    whole, _ = loss_and_grads(model, audio, text, CAPTION_KEYS)
    model.zero_grad()
    part, _ = loss_and_grads(model, audio.select(range(4)), text.select(range(4)), CAPTION_KEYS[:4])
    assert abs(whole - part) > 1e-3


def test_caption_codes_match_equal_captions_only():
    codes = caption_codes(CAPTION_KEYS, torch.device("cpu"))
    assert torch.equal(same_code_mask(codes), same_caption_mask(CAPTION_KEYS))
    # blake2b, not the salted hash(): the same caption has the same code in every process
    expected = int.from_bytes(hashlib.blake2b(b"calm male", digest_size=8).digest(), "little") >> 1
    assert codes[0].item() == expected

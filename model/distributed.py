"""Data-parallel helpers: which process this is, and gathering in-batch negatives across processes.

With DDP each process holds ``B`` clips. Contrastive losses get better with more negatives, so by
default every process scores its clips against the *global* batch (open_clip's ``gather_with_grad``):
embeddings are all-gathered with gradients and every process computes the same global loss. Because
the all-gather's backward sums the gradients of all processes' copies and DDP then averages over
processes, the parameter gradient equals the single-process gradient of the global batch exactly.
Processes may hold different numbers of clips (a corrupt file shrinks a batch): rows are padded to the
largest count for the collective and dropped afterwards.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F
from torch import Tensor


def process_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from the torchrun environment; (0, 0, 1) when not launched by it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def gather_counts(count: int, device: torch.device) -> list[int]:
    """Every process's item count (one small collective)."""
    local = torch.tensor([count], dtype=torch.long, device=device)
    out = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return [int(c) for c in out]


def gather_rows(x: Tensor, counts: list[int], grad: bool = True) -> Tensor:
    """All-gather the rows of ``x`` (this process holds ``counts[rank]`` rows); ``grad`` keeps the gradient."""
    longest = max(counts)
    padded = (
        F.pad(x, (0, 0) * (x.dim() - 1) + (0, longest - x.shape[0])) if x.shape[0] < longest else x
    )
    padded = padded.contiguous()
    if grad:
        parts = dist_fn.all_gather(padded)
    else:
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])


def caption_codes(caption_keys: list[str], device: torch.device) -> Tensor:
    """Stable 63-bit codes of normalised captions, so equal captions can be matched across processes."""
    codes = [
        int.from_bytes(hashlib.blake2b(k.encode("utf-8"), digest_size=8).digest(), "little") >> 1
        for k in caption_keys
    ]
    return torch.tensor(codes, dtype=torch.long, device=device)


def gather_caption_codes(
    caption_keys: list[str], counts: list[int], device: torch.device
) -> Tensor:
    """The caption codes of every process's items, in process order (as :func:`gather_rows`)."""
    return gather_rows(caption_codes(caption_keys, device), counts, grad=False)

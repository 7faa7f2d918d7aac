"""Data-parallel training gathers in-batch negatives across processes: two gloo processes holding parts
of a batch get exactly the loss and gradient of one process holding the whole batch (also for unequal
parts, as when a corrupt file shrinks one process's batch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


CODES_IN_A_FRESH_PROCESS = """
import json, sys
import torch
from model.distributed import caption_codes
print(json.dumps(caption_codes(json.loads(sys.argv[1]), torch.device("cpu")).tolist()))
"""

# normalised captions as they come, plus near-misses that are different captions
CAPTIONS = (
    CAPTION_KEYS
    + [
        "calm male ",
        "Calm male",
        "calm  male",
        "一位男士平静地说话",
        "一位男士平静地说",
        "",
    ]
    + [f"a {p} voice, speaker {i}" for i, p in enumerate(["low", "high"] * 1000)]
)


def codes_in_process(captions: list[str], hash_seed: str) -> list[int]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run(
        [sys.executable, "-c", CODES_IN_A_FRESH_PROCESS, json.dumps(captions)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_caption_codes_match_equal_captions_only():
    codes = caption_codes(CAPTIONS, torch.device("cpu"))
    assert codes.dtype == torch.long and codes.shape == (len(CAPTIONS),)
    assert bool((codes >= 0).all())  # 63-bit: no sign wrap-around in the long tensor
    assert torch.equal(same_code_mask(codes), same_caption_mask(CAPTIONS))
    assert len(set(codes.tolist())) == len(set(CAPTIONS))  # no collisions among 2000+ captions


def test_caption_codes_agree_across_processes_with_any_batch_split():
    """What the codes are for: each process codes only its own part of the global batch, and the
    gathered codes must match equal captions across the parts (a per-call numbering or the salted
    built-in hash() would not)."""
    codes = caption_codes(CAPTION_KEYS, torch.device("cpu"))
    for cut in range(1, len(CAPTION_KEYS)):
        parts = torch.cat(
            [
                caption_codes(CAPTION_KEYS[:cut], torch.device("cpu")),
                caption_codes(CAPTION_KEYS[cut:][::-1], torch.device("cpu")).flip(0),
            ]
        )
        assert torch.equal(parts, codes), cut
    # two interpreters with different str hash salts give the same codes as this one
    here = caption_codes(CAPTIONS, torch.device("cpu")).tolist()
    assert codes_in_process(CAPTIONS, "1") == here
    assert codes_in_process(CAPTIONS[::-1], "2") == here[::-1]

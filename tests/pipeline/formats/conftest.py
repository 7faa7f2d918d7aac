"""Fixtures the format tests share: a small captioned clip manifest in fsclap's own words."""

from __future__ import annotations

import pandas as pd
import pytest

from fsclap.testing.style_audio import write_voice_like


@pytest.fixture()
def captioned(tmp_path) -> pd.DataFrame:
    """Four whole-file clips with absolute paths, as ``ClipManifest`` hands them to the writers."""
    rows = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        path = write_voice_like(
            tmp_path / "clips" / f"d{i % 2}" / f"c{i}.wav",
            f0_hz=110 + 30 * i,
            seconds=0.4 + 0.1 * i,
        )
        rows.append(
            {
                "clip_id": f"c{i}",
                "audio_path": str(path),
                "caption": f"A speaker talks {i}. ",
                "caption_zh": f"说话人{i}",
                "text": f"line {i}",
                "speaker_id": f"s{i}",
                "gender": ["male", "female"][i % 2],
                "pitch": ["high", "low", "normal", None][i],
                "speed": ["slow", "fast", "normal", None][i],
                "energy": ["low", "normal", "high", None][i],
                "emotion": ["fearful", "happy", "unknown", "neutral"][i],
                "split": split,
                "duration_s": 0.4 + 0.1 * i,
            }
        )
    return pd.DataFrame(rows)

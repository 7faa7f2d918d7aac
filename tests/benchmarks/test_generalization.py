"""The cross-engine benchmark runs end to end in its quick mode and reports every part for both families."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "generalization.py"


def _load():
    spec = importlib.util.spec_from_file_location("generalization_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alt_captions_share_no_wording_with_the_project_writer():
    import sys

    sys.path.insert(0, str(BENCHMARK.parent))
    from alt_captions import alt_caption

    from fsclap.caption_writer import CaptionWriter

    levels = {
        "gender": "female",
        "pitch": "high",
        "speed": "fast",
        "energy": "low",
        "emotion": "angry",
    }
    ours = {CaptionWriter("en", 0).write(levels, key=str(i)) for i in range(40)}
    alt = {alt_caption(levels, 0, str(i)) for i in range(40)}
    assert not ours & alt
    # the level words the project's writer uses for these levels never appear in the other wording
    for caption in alt:
        lowered = caption.lower()
        for word in (
            "high-pitched",
            "high pitch",
            "quickly",
            "rapid",
            "softly",
            "quiet",
            "angry",
            "woman",
        ):
            assert word not in lowered, (word, caption)
    unknown = alt_caption(
        {"gender": "male", "pitch": "unknown", "speed": None, "energy": "high"}, 0, "k"
    )
    assert "register" not in unknown and "tempo" not in unknown


@pytest.mark.slow
def test_quick_mode_reports_both_families(tmp_path):
    bench = _load()
    results = bench.main(["--quick", "--out", str(tmp_path)])
    retrieval = results["retrieval"]
    for key in (
        "train|held-out voices|fsclap",
        "test|project wording|fsclap",
        "test|other wording|clap",
    ):
        run = retrieval[key][0]
        assert run["n"] >= 10
        for direction in ("a2t", "t2a"):
            assert 0.0 <= run[direction]["R@10"] <= 100.0
        assert set(run["agreement_t2a"]) >= {"pitch", "speed"}
    # the test galleries hold test-family voices only
    galleries = sorted((tmp_path / "quick" / "retrieval").glob("gallery_test_*.parquet"))
    import pandas as pd

    for path in galleries:
        engines = set(pd.read_parquet(path)["engine"])
        assert engines and engines <= {"piper", "kokoro"}, engines
    assert set(results["diarization"]) == {"train", "test"}
    for family in ("train", "test"):
        assert results["diarization"][family]["episodes"]
        assert results["captions"][f"{family}|no speaker ids"]["n"] > 0
    table = (tmp_path / "quick" / "table.md").read_text()
    assert (
        "## Retrieval" in table and "## Diarization" in table and "## Caption attributes" in table
    )
    assert json.loads((tmp_path / "quick" / "results.json").read_text())["mode"] == "quick"

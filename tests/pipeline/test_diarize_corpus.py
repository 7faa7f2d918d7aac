"""The corpus builder from generated MP4 episodes through diarize and consistency, driven by the
real runner (acquire -> extract -> separate(none) -> diarize -> consistency), twice."""

from __future__ import annotations

import pandas as pd

from fsclap.config import load_settings
from pipeline.consistency import Consistency
from pipeline.diarize.stage import Diarize
from pipeline.runner import AUDIO_STAGES, build_stages, run_build
from pipeline.segments import SEGMENT_COLUMNS
from pipeline.tables import read_episodes


def corpus_stages(settings):
    """The runner's own stage list, up to consistency."""
    stages = build_stages(settings, AUDIO_STAGES + ["diarize", "consistency"])
    assert [type(s) for s in stages[-2:]] == [Diarize, Consistency]
    return stages


def test_generated_drama_through_the_runner(tmp_path):
    from pipeline.synth.drama import generate_dramas

    generated = generate_dramas(
        tmp_path / "gen", dramas=1, episodes=2, seed=2, duration_s=30, workers=2
    )
    settings = load_settings(overrides={"data_root": str(tmp_path / "data"), "profile": "offline"})
    summary = run_build(settings, generated.sources_path, stages=corpus_stages(settings))
    assert summary.finished == 2, summary.render()

    episodes = read_episodes(tmp_path / "data")
    assert (episodes["status"] == "scored").all()
    assert (episodes["diarize_outcome"] == "ok").all() and (episodes["n_kept_segments"] > 0).all()
    manifest = pd.read_parquet(tmp_path / "data" / "manifests" / "segments.parquet")
    assert list(manifest.columns) == SEGMENT_COLUMNS
    assert set(manifest["episode_id"]) == set(episodes["episode_id"])
    kept = manifest[manifest["kept"]]
    assert len(kept) and all((tmp_path / "data" / p).is_file() for p in kept["clip_path"])
    assert kept["speaker_id"].str.startswith("drama01_spk").all()

    # a second run does no work
    stages = corpus_stages(settings)
    run_build(settings, generated.sources_path, stages=stages)
    assert [s.calls for s in stages] == [0] * len(stages)

"""The default corpus builder, every stage, on generated short dramas (offline profile):
episodes -> vocals -> diarized segments -> consistent clips -> captions -> a published dataset."""

import pandas as pd
import pytest

from fsclap.cli import main
from fsclap.manifest import ClipManifest


@pytest.mark.slow
def test_corpus_build_runs_every_stage_on_generated_dramas(tmp_path, capsys):
    from pipeline.synth import generate_dramas

    dramas = generate_dramas(
        tmp_path / "dramas", dramas=3, episodes=2, seed=3, duration_s=30, workers=2
    )
    data = tmp_path / "data"
    assert (
        main(["corpus", "build", "--sources", str(dramas.sources_path), "--data-root", str(data)])
        == 0
    )
    out = capsys.readouterr().out
    for stage in ("acquire", "extract", "separate", "diarize", "consistency", "caption", "publish"):
        assert f"{stage} " in out, stage

    episodes = pd.read_parquet(data / "manifests" / "episodes.parquet")
    assert len(episodes) == 6 and (episodes["status"] != "failed").all()
    segments = pd.read_parquet(data / "manifests" / "segments.parquet")
    assert segments["kept"].any() and segments["speaker_id"].notna().any()
    clips = ClipManifest.read(data / "manifests" / "clips.parquet")
    assert len(clips) == int(segments["kept"].sum())
    assert clips.frame["caption"].str.len().gt(10).all()
    assert (clips.frame["emotion"] == "unknown").all()  # offline profile: emotion is not measured
    assert not clips.frame["caption"].str.contains("angry|happy|sad", case=False).any()

    versions = [p for p in (data / "datasets").iterdir() if p.is_dir()]
    assert len(versions) == 1
    splits = {
        name: pd.read_parquet(versions[0] / f"{name}.parquet") for name in ("train", "val", "test")
    }
    assert sum(len(f) for f in splits.values()) == len(clips)
    speakers = [set(f["speaker_id"]) for f in splits.values()]
    assert not (speakers[0] & speakers[1] or speakers[0] & speakers[2] or speakers[1] & speakers[2])
    assert (versions[0] / "README.md").is_file()

    # a second run does no work and publishes the same version
    assert (
        main(["corpus", "build", "--sources", str(dramas.sources_path), "--data-root", str(data)])
        == 0
    )
    assert [p.name for p in (data / "datasets").iterdir() if p.is_dir()] == [versions[0].name]


@pytest.mark.slow
def test_a_new_episode_joining_a_drama_leaves_every_episode_finished(tmp_path):
    """Consistency re-scores a drama's finished episodes when a new one arrives; the later stages
    count them as done and must give them back their final status."""
    import shutil

    import yaml

    from fsclap.config import load_settings
    from pipeline.runner import run_build
    from pipeline.synth import generate_dramas

    generated = generate_dramas(
        tmp_path / "gen", dramas=1, episodes=3, seed=4, duration_s=25, workers=2
    )
    folder = tmp_path / "episodes"
    folder.mkdir()
    videos = sorted((generated.out_dir / "videos").rglob("*.mp4"))
    for video in videos[:2]:
        shutil.copy(video, folder / video.name)
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        yaml.safe_dump(
            {
                "min_episodes": 2,
                "dramas": [{"id": "d1", "title": "t", "language": "en", "urls": [str(folder)]}],
            }
        )
    )
    settings = load_settings(overrides={"data_root": str(tmp_path / "data")})
    assert run_build(settings, sources).finished == 2
    shutil.copy(videos[2], folder / videos[2].name)
    summary = run_build(settings, sources)
    assert summary.finished == 3, summary.render()
    episodes = pd.read_parquet(tmp_path / "data" / "manifests" / "episodes.parquet")
    assert (episodes["status"] == "published").all()


@pytest.mark.slow
def test_streaming_builds_the_same_corpus_as_stage_by_stage(tmp_path):
    """Every real stage (offline profile), once stage by stage and once streaming: the same
    episodes table, segments, clips and dataset version."""
    from fsclap.config import load_settings
    from pipeline.runner import run_build
    from pipeline.synth import generate_dramas

    dramas = generate_dramas(
        tmp_path / "dramas", dramas=2, episodes=2, seed=5, duration_s=20, workers=2
    )
    built = {}
    for mode in ("stages", "stream"):
        data = tmp_path / mode
        settings = load_settings(
            overrides={
                "data_root": str(data),
                "orchestration": {"streaming": mode == "stream", "stream_queue": 1},
            }
        )
        summary = run_build(settings, dramas.sources_path)
        assert summary.finished == 4, summary.render()
        manifests = data / "manifests"
        built[mode] = (
            [dict(s.counts) for s in summary.stages],
            # caption's key hashes its clips' mtimes, which differ between the two data roots
            pd.read_parquet(manifests / "episodes.parquet").drop(
                columns=["updated_at", "caption_key", "publish_key"]
            ),
            pd.read_parquet(manifests / "segments.parquet"),
            pd.read_parquet(manifests / "clips.parquet"),
            sorted(p.name for p in (data / "datasets").iterdir() if p.is_dir()),
        )
    stages, stream = built["stages"], built["stream"]
    assert stream[0] == stages[0]
    pd.testing.assert_frame_equal(stream[1], stages[1])
    pd.testing.assert_frame_equal(stream[2], stages[2])
    pd.testing.assert_frame_equal(stream[3], stages[3])
    assert stream[4] == stages[4] and len(stages[4]) == 1

"""The runner end to end over a loopback "drama": vocal tracks and manifests, every bad input
as a failures row, a second run that does no work, resume after kill -9, and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fsclap.config import load_settings
from fsclap.errors import MissingModelError
from fsclap.testing.media import LoopbackServer, closed_port, make_episode_mp4, truncate_file
from pipeline.runner import AUDIO_STAGES, build_stages, run_build
from pipeline.tables import read_episodes, read_failures

NASTY_TITLE = "../../../etc/第1集 «passwd» ../"


@pytest.fixture(scope="module")
def web(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("web")
    for i in range(1, 5):
        make_episode_mp4(root / f"ep{i:02d}.mp4", seconds=3, seed=i)
    (root / "mirror").mkdir()
    (root / "mirror" / "same.mp4").write_bytes(
        (root / "ep01.mp4").read_bytes()
    )  # same bytes, other URL
    make_episode_mp4(root / "noaudio.mp4", seconds=2, audio="none")
    make_episode_mp4(root / "silent.mp4", seconds=2, audio="silence")
    truncate_file(root / "ep02.mp4", root / "truncated.mp4", 0.5)
    make_episode_mp4(root / "long.mp4", seconds=12, seed=9, faststart=True)
    truncate_file(root / "long.mp4", root / "cut.mp4", 0.4)
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.mp4").write_text("a text file renamed to .mp4\n")
    return root


def feed(server: LoopbackServer, names: list[str]) -> str:
    items = "".join(
        f"<item><title>{NASTY_TITLE} {n}</title><enclosure url='{server.url(n)}' type='video/mp4' length='1'/></item>"
        for n in names
    )
    return f"<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel><title>{NASTY_TITLE}</title>{items}</channel></rss>"


def settings(data_root: Path, profile: str = "offline", **stages):
    stages = {"acquire": {"retries": 1, "backoff_s": 0.01}, **stages}
    return load_settings(
        overrides={"data_root": str(data_root), "profile": profile, "stages": stages}
    )


def write_sources(path: Path, dramas: list[dict], min_episodes: int = 2) -> Path:
    path.write_text(
        yaml.safe_dump({"min_episodes": min_episodes, "dramas": dramas}, allow_unicode=True),
        encoding="utf-8",
    )
    return path


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_loopback_drama_with_every_bad_input(tmp_path, web, tiny_htdemucs_repo):
    (web / "feed.xml").unlink(missing_ok=True)
    with LoopbackServer(web) as server:
        (web / "feed.xml").write_text(
            feed(server, [f"ep{i:02d}.mp4" for i in range(1, 5)]), encoding="utf-8"
        )
        bad = [
            "missing.mp4",
            "noaudio.mp4",
            "silent.mp4",
            "truncated.mp4",
            "cut.mp4",
            "empty.mp4",
            "notes.mp4",
            "mirror/same.mp4",
            "ep03.mp4",
        ]  # the last one is also in the feed: a duplicate URL
        sources = write_sources(
            tmp_path / "sources.yaml",
            [
                {
                    "id": "drama-a",
                    "title": NASTY_TITLE,
                    "language": "zh",
                    "urls": [
                        server.url("feed.xml"),
                        *[server.url(n) for n in bad],
                        f"http://127.0.0.1:{closed_port()}/ep.mp4",
                    ],
                },
                {
                    "id": "drama-b",
                    "title": "too short",
                    "language": "en",
                    "urls": [server.url("ep04.mp4") + "#again"],
                },
            ],
        )
        before = files_under(tmp_path)
        config = settings(tmp_path / "data", "paper")
        config.model_paths.demucs = tiny_htdemucs_repo
        summary = run_build(config, sources, only=AUDIO_STAGES)

        # a second run: the feed is listed again, and only the retryable failure (the unreachable
        # host) is tried again; nothing is downloaded, extracted or separated
        requests = len(server.requests)
        stages = build_stages(config, AUDIO_STAGES)
        run_build(config, sources, stages=stages)
        assert set(server.requests[requests:]) == {"/feed.xml"}
        assert [s.calls for s in stages] == [1, 0, 0]
        (web / "feed.xml").unlink()

    episodes = read_episodes(tmp_path / "data").set_index("episode_id")
    done = episodes[episodes["status"] == "separated"]
    assert len(done) == 4 and summary.finished == 4
    assert set(done["title"]) == {f"{NASTY_TITLE} ep{i:02d}.mp4" for i in range(1, 5)}
    assert (done["drama_title"] == NASTY_TITLE).all() and (done["separation"] == "htdemucs").all()
    for _, row in done.iterrows():
        vocals = tmp_path / "data" / row["vocals_path"]
        assert vocals.is_file() and vocals.suffix == ".flac"
        assert (
            row["sample_rate"] == 44100
            and row["channels"] == 2
            and row["duration_s"] == pytest.approx(3.0, abs=0.1)
        )
        assert len(row["media_sha256"]) == 64 and row["separate_key"] and row["extract_config"]
    # nothing was written outside the data root, whatever the titles said
    assert {
        p for p in files_under(tmp_path) - before if tmp_path / "data" not in p.parents
    } == set()

    failures = read_failures(tmp_path / "data")
    by_error = failures.groupby("error")["stage"].apply(list).to_dict()
    expected = {
        "NotFound": ["acquire"],
        "Unreachable": ["acquire"],
        "NoAudioStream": ["acquire"],
        "NoAudioSignal": ["extract"],
        "TruncatedMedia": ["extract"],
        "EmptyMedia": ["acquire"],
        "DuplicateContent": ["acquire"],
        "DuplicateSource": ["discover", "discover"],
        "TooFewEpisodes": ["discover"],
    }
    for error, stages in expected.items():
        assert sorted(by_error.pop(error)) == stages, error
    assert sorted(by_error.pop("UnreadableMedia")) == [
        "acquire",
        "acquire",
    ]  # truncated moov, text file
    assert by_error == {}
    assert (
        failures["message"].str.len().gt(10).all()
        and not failures["message"].str.contains("\n").any()
    )
    assert set(failures.loc[failures["stage"] != "discover", "item_id"]) <= set(episodes.index)
    texts = failures.set_index("error")["message"]
    assert (
        "not a media file"
        in failures.loc[failures["message"].str.contains("unrecognised"), "message"].iloc[0]
    )
    assert "same media content" in texts["DuplicateContent"]
    assert "min_episodes is 2" in texts["TooFewEpisodes"]


def test_second_run_does_no_work_and_writes_nothing(tmp_path, web):
    with LoopbackServer(web) as server:
        sources = write_sources(
            tmp_path / "s.yaml",
            [
                {
                    "id": "d",
                    "title": "t",
                    "language": "en",
                    "urls": [server.url(f"ep{i:02d}.mp4") for i in (1, 2, 3)],
                },
            ],
        )
        first = run_build(settings(tmp_path / "data"), sources, only=AUDIO_STAGES)
        assert first.finished == 3
        snapshot = {p: p.stat().st_mtime_ns for p in files_under(tmp_path / "data")}
        requests = len(server.requests)
        stages = build_stages(settings(tmp_path / "data"), AUDIO_STAGES)
        second = run_build(settings(tmp_path / "data"), sources, stages=stages)
        assert len(server.requests) == requests
    assert [s.calls for s in stages] == [0, 0, 0] and second.work_done == 0
    assert [s.counts["done"] for s in second.stages] == [3, 3, 3]
    after = {p: p.stat().st_mtime_ns for p in files_under(tmp_path / "data")}
    assert after == snapshot, "a run with nothing to do rewrites nothing"
    episodes = read_episodes(tmp_path / "data")
    assert (episodes["separation"] == "none").all() and (
        episodes["vocals_path"] == episodes["audio_path"]
    ).all()
    assert (episodes["sample_rate"] == 16000).all() and (episodes["channels"] == 1).all()


def test_config_change_reruns_only_what_depends_on_it(tmp_path, web):
    folder = tmp_path / "eps"
    folder.mkdir()
    for i in (1, 2):
        (folder / f"ep{i}.mp4").write_bytes((web / f"ep{i:02d}.mp4").read_bytes())
    sources = write_sources(
        tmp_path / "s.yaml", [{"id": "d", "title": "t", "language": "en", "urls": ["eps"]}]
    )
    run_build(settings(tmp_path / "data"), sources, only=AUDIO_STAGES)
    stages = build_stages(
        settings(tmp_path / "data", separate={"method": "repet", "chunk_s": 10}), AUDIO_STAGES
    )
    run_build(settings(tmp_path / "data"), sources, stages=stages)
    assert [s.calls for s in stages] == [0, 0, 2]
    stages = build_stages(
        settings(
            tmp_path / "data",
            extract={"codec": "pcm_f32le"},
            separate={"method": "repet", "chunk_s": 10},
        ),
        AUDIO_STAGES,
    )
    run_build(settings(tmp_path / "data"), sources, stages=stages)
    assert [s.calls for s in stages] == [0, 2, 2]
    assert (read_episodes(tmp_path / "data")["separation"] == "repet").all()


def test_known_failures_are_skipped_unless_retried(tmp_path, web):
    folder = tmp_path / "eps"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((web / "ep01.mp4").read_bytes())
    (folder / "b.mp4").write_bytes((web / "silent.mp4").read_bytes())
    sources = write_sources(
        tmp_path / "s.yaml", [{"id": "d", "title": "t", "language": "en", "urls": ["eps"]}]
    )
    run_build(settings(tmp_path / "data"), sources, only=AUDIO_STAGES)
    stages = build_stages(settings(tmp_path / "data"), AUDIO_STAGES)
    summary = run_build(settings(tmp_path / "data"), sources, stages=stages)
    assert [s.calls for s in stages] == [0, 0, 0] and summary.stages[1].counts["known_failed"] == 1
    stages = build_stages(settings(tmp_path / "data"), AUDIO_STAGES)
    run_build(settings(tmp_path / "data"), sources, stages=stages, retry_failed=True)
    assert [s.calls for s in stages] == [0, 1, 0]
    failures = read_failures(tmp_path / "data")
    assert failures.set_index("error").loc["NoAudioSignal", "attempts"] == 2


def test_missing_demucs_weights_stop_the_run_before_any_download(tmp_path, web):
    with LoopbackServer(web) as server:
        sources = write_sources(
            tmp_path / "s.yaml",
            [
                {
                    "id": "d",
                    "title": "t",
                    "language": "en",
                    "urls": [server.url("ep01.mp4"), server.url("ep02.mp4")],
                },
            ],
        )
        with pytest.raises(
            MissingModelError, match=r"htdemucs\.yaml not found at .*models/demucs/htdemucs\.yaml"
        ):
            run_build(settings(tmp_path / "data", "paper"), sources, only=AUDIO_STAGES)
        assert server.requests == []
    assert not (tmp_path / "data").exists()


KILLER = """
import os, signal, sys
from fsclap.config import load_settings
from pipeline import extract
from pipeline.runner import run_build

original = extract.Extract.process
count = [0]

def process(self, episode):
    result = original(self, episode)
    count[0] += 1
    if count[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # dies with episode 3 extracted but not yet recorded
    return result

extract.Extract.process = process
settings = load_settings(overrides={"data_root": sys.argv[2], "stages": {"extract": {"workers": 1}}})
run_build(settings, sys.argv[1], only=["acquire", "extract", "separate"])
"""


def test_resume_after_kill_minus_nine(tmp_path, web):
    folder = tmp_path / "eps"
    folder.mkdir()
    for i in range(1, 5):
        (folder / f"ep{i}.mp4").write_bytes((web / f"ep{i:02d}.mp4").read_bytes())
    sources = write_sources(
        tmp_path / "s.yaml", [{"id": "d", "title": "t", "language": "en", "urls": ["eps"]}]
    )
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run(
        [sys.executable, str(script), str(sources), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "CI": "1"},
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    stages = build_stages(settings(tmp_path / "data"), AUDIO_STAGES)
    summary = run_build(settings(tmp_path / "data"), sources, stages=stages)
    # acquire finished before the kill; two extractions were recorded, the third was in flight
    assert [s.calls for s in stages] == [0, 2, 4]
    assert summary.finished == 4
    assert (read_episodes(tmp_path / "data")["status"] == "separated").all()


def test_cli_corpus_build(tmp_path, web, capsys):
    from fsclap.cli import main

    folder = tmp_path / "eps"
    folder.mkdir()
    for i in (1, 2):
        (folder / f"ep{i}.mp4").write_bytes((web / f"ep{i:02d}.mp4").read_bytes())
    sources = write_sources(
        tmp_path / "s.yaml", [{"id": "d", "title": "t", "language": "en", "urls": [str(folder)]}]
    )
    code = main(
        ["corpus", "build", "--sources", str(sources), "--data-root", str(tmp_path / "data")]
    )
    out = capsys.readouterr().out
    assert (
        code == 0
        and "corpus build: 1 dramas (0 skipped), 2 episodes" in out
        and "2 episodes" in out
    )
    assert len(pd.read_parquet(tmp_path / "data" / "manifests" / "episodes.parquet")) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("dramas:\n  - {id: d, title: t, language: en}\n")
    assert (
        main(["corpus", "build", "--sources", str(bad), "--data-root", str(tmp_path / "data")]) == 2
    )
    assert "error: sources file" in capsys.readouterr().err
    assert (
        main(
            [
                "--set",
                "stages.separat.method=none",
                "corpus",
                "build",
                "--sources",
                str(sources),
                "--data-root",
                str(tmp_path / "data"),
            ]
        )
        == 2
    )
    assert "unknown stage(s) in settings.stages: separat" in capsys.readouterr().err
    assert (
        main(
            [
                "corpus",
                "build",
                "--sources",
                str(sources),
                "--data-root",
                str(tmp_path / "paper"),
                "--profile",
                "paper",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: Demucs model file htdemucs.yaml not found at ") and "\n" not in err
    )

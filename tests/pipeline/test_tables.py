"""Episodes/failures tables: round trips, the write-ahead journal, the run lock."""

from __future__ import annotations

import pandas as pd
import pytest

from fsclap.errors import FsclapError
from pipeline.tables import (
    CorpusTables,
    Episode,
    RunLock,
    UnreadableTable,
    read_episodes,
    read_failures,
)


def make_episode(i: int, **kw) -> Episode:
    values = dict(
        episode_id=f"d-{i:04d}",
        drama_id="d",
        source_url=f"http://x/{i}.mp4",
        source_key=f"k{i}",
        episode_index=i,
    )
    values.update(kw)
    return Episode(**values)


def test_episode_round_trip_keeps_stamps_and_foreign_columns(tmp_path):
    ep = make_episode(1, duration_s=3.5, sample_rate=44100, peak_dbfs=float("-inf"))
    ep.set_stamp("extract", key="k", version="1", config="c")
    ep.extra["diarize_segments"] = 7  # a column this version does not know (a newer one wrote it)
    with CorpusTables(tmp_path) as tables:
        tables.save_episode(ep)
    frame = pd.read_parquet(tmp_path / "manifests" / "episodes.parquet")
    assert {
        "episode_id",
        "drama_id",
        "source_url",
        "status",
        "duration_s",
        "extract_key",
        "diarize_segments",
    } <= set(frame)
    back = CorpusTables(tmp_path).episodes["d-0001"]
    assert back.stamp("extract") == {"key": "k", "version": "1", "config": "c"}
    assert back.extra == {"diarize_segments": 7}
    assert back.sample_rate == 44100 and back.duration_s == 3.5 and back.peak_dbfs == float("-inf")
    assert back.failed_stage is None and back.media_path is None


def test_journal_replays_work_a_killed_run_did_not_flush(tmp_path):
    tables = CorpusTables(tmp_path, flush_every_s=3600)
    tables.save_episode(make_episode(1))
    tables.flush(force=True)
    tables.save_episode(make_episode(2))
    tables.record_failure("acquire", "d-0003", "NotFound", "HTTP 404", drama_id="d")
    # no close(): the process "dies" here; the Parquet file only has episode 1
    assert len(pd.read_parquet(tmp_path / "manifests" / "episodes.parquet")) == 1
    journal = tmp_path / "manifests" / ".journal.jsonl"
    with open(journal, "a") as handle:
        handle.write('{"kind": "episode", "row": {"episode_')  # a torn last line
    reopened = CorpusTables(tmp_path)
    assert set(reopened.episodes) == {"d-0001", "d-0002"}
    assert ("acquire", "d-0003") in reopened.failures
    assert not journal.exists(), "replayed journal is folded into the Parquet files"
    assert len(read_episodes(tmp_path)) == 2


def test_journal_is_fsynced_in_groups_within_sync_every_s(tmp_path, monkeypatch):
    import os
    import time

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    tables = CorpusTables(tmp_path, flush_every_s=3600, sync_every_s=0.2)
    for i in range(50):
        tables.save_episode(make_episode(i))
    assert len(synced) <= 5, "one fsync per group of changes, not one per change"
    time.sleep(0.6)
    assert len(synced) >= 1, "a change is fsync'd within sync_every_s even when no other follows"
    every = CorpusTables(tmp_path / "strict", flush_every_s=3600, sync_every_s=0)
    before = len(synced)
    for i in range(5):
        every.save_episode(make_episode(i))
    assert len(synced) - before == 5


def test_rewrites_of_a_large_table_are_spaced_by_their_cost(tmp_path):
    tables = CorpusTables(tmp_path, flush_every_s=0)
    tables.save_episode(make_episode(1))  # rewritten at once (flush_every_s=0)
    path = tmp_path / "manifests" / "episodes.parquet"
    assert len(pd.read_parquet(path)) == 1
    tables._flush_cost = 1.0  # the last rewrite took a second: the next waits ~FLUSH_SHARE s
    tables.save_episode(make_episode(2))
    assert len(pd.read_parquet(path)) == 1 and len(read_episodes(tmp_path)) == 2
    tables.close()
    assert len(pd.read_parquet(path)) == 2


def test_failures_count_attempts_and_leave_on_success(tmp_path):
    with CorpusTables(tmp_path) as tables:
        tables.record_failure(
            "acquire", "d-0001", "Unreachable", "cannot reach\nhost", drama_id="d", retryable=True
        )
        tables.record_failure(
            "acquire", "d-0001", "Unreachable", "cannot reach host", drama_id="d", retryable=True
        )
        tables.record_failure("extract", "d-0002", "NoAudioSignal", "silent", drama_id="d")
    failures = read_failures(tmp_path)
    assert list(failures.columns[:5]) == ["stage", "item_id", "drama_id", "error", "message"]
    row = failures.set_index("item_id").loc["d-0001"]
    assert row["attempts"] == 2 and bool(row["retryable"]) and row["message"] == "cannot reach host"
    assert str(failures["time"].dtype).startswith("datetime64")
    with CorpusTables(tmp_path) as tables:
        tables.resolve_failure("acquire", "d-0001")
    assert list(read_failures(tmp_path)["item_id"]) == ["d-0002"]


def test_read_only_tables_do_not_write(tmp_path):
    tables = CorpusTables(tmp_path, flush_every_s=3600)
    tables.save_episode(make_episode(1))  # journal only
    before = sorted(p.name for p in (tmp_path / "manifests").iterdir())
    assert len(read_episodes(tmp_path)) == 1  # sees the journal
    assert sorted(p.name for p in (tmp_path / "manifests").iterdir()) == before


def test_run_lock_is_exclusive(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(FsclapError, match="another corpus build"):
            with RunLock(tmp_path):
                pass
    with RunLock(tmp_path):
        pass


@pytest.mark.parametrize(
    "name, content, lost",
    [
        ("episodes.parquet", b"not parquet at all\n", "finished work is then redone"),
        ("failures.parquet", b"", "failures are then recorded afresh"),
    ],
)
def test_a_damaged_table_is_one_line_naming_it(tmp_path, name, content, lost):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / name).write_bytes(content)
    with pytest.raises(UnreadableTable) as caught:
        CorpusTables(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'manifests' / name} is not a readable Parquet table")
    assert lost in message and "\n" not in message

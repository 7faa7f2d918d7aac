"""Atomic writes: the old file or the new one, flushed to the disk before and after the rename."""

from __future__ import annotations

import os

import pytest

from fsclap import io


def test_atomic_write_syncs_the_content_before_the_rename_and_the_folder_after(
    tmp_path, monkeypatch
):
    target = tmp_path / "table.json"
    target.write_text("old")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "fsync", fsync)
    monkeypatch.setattr(io.os, "replace", replace)
    io.write_json(target, {"new": True})
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / ".table.json."))  # the temporary file
    assert events[2][1] == str(tmp_path)  # the folder holding the new entry
    assert '"new": true' in target.read_text()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]

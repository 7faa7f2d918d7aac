"""lhotse ``CutSet``s, read back with lhotse itself: supervision times relative to the cut,
absolute recording sources, and cuts without a caption reported."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from fsclap.audio import load_audio
from fsclap.cli import main
from fsclap.testing.style_audio import write_voice_like
from pipeline.formats import export_manifest, import_manifest


def test_round_trip_and_segments_trim_to_their_supervisions(captioned, tmp_path):
    from lhotse import CutSet

    captioned = captioned.copy()
    captioned["start_s"] = [None, 0.1, None, None]
    captioned["end_s"] = [None, 0.4, None, None]
    out = export_manifest(captioned, tmp_path / "cuts.jsonl.gz", "lhotse")
    cuts = CutSet.from_file(out)
    assert len(cuts) == 4 and cuts[1].duration == pytest.approx(0.3)
    sup = cuts[1].supervisions[0]
    assert (sup.start, sup.duration) == (0.0, pytest.approx(0.3))  # relative to the cut
    trimmed = cuts.trim_to_supervisions()
    assert [c.duration for c in trimmed] == pytest.approx([c.duration for c in cuts])
    samples, sr = load_audio(captioned.loc[1, "audio_path"])
    segment = trimmed[1].load_audio()[0]
    assert np.allclose(segment, samples[int(0.1 * sr) : int(0.1 * sr) + len(segment)], atol=1e-4)
    back = import_manifest(out, "lhotse").frame
    for col in ("clip_id", "audio_path", "caption", "caption_zh", "text", "speaker_id", "split"):
        assert back[col].tolist() == captioned[col].tolist(), col
    for col in ("gender", "pitch", "speed", "energy", "emotion"):
        assert back[col].tolist() == captioned[col].tolist(), col
    assert back.loc[1, "start_s"] == pytest.approx(0.1)
    assert back.loc[1, "end_s"] == pytest.approx(0.4)
    assert pd.isna(back.loc[0, "start_s"])


def test_sources_are_absolute_from_a_relative_manifest(captioned, tmp_path, monkeypatch):
    from lhotse import CutSet

    manifest = tmp_path / "m.csv"
    rel = captioned.assign(
        audio_path=[os.path.relpath(p, tmp_path) for p in captioned["audio_path"]]
    )
    rel.to_csv(manifest, index=False)
    monkeypatch.chdir(tmp_path)
    args = ["dataset", "export", "--manifest", "m.csv", "--format", "lhotse", "--out", "c.jsonl.gz"]
    assert main(args) == 0
    monkeypatch.chdir(tmp_path / "clips")  # somewhere else
    cuts = CutSet.from_file(tmp_path / "c.jsonl.gz")
    assert [c.recording.sources[0].source for c in cuts] == captioned["audio_path"].tolist()
    assert all(c.load_audio().shape[1] > 0 for c in cuts)


def test_cuts_without_a_caption_are_problems(tmp_path):
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    cuts = []
    for i, custom in enumerate([{"caption": "A calm voice."}, None, {"emotion": "sad"}, "none"]):
        path = write_voice_like(tmp_path / f"r{i}.wav", seconds=0.3)
        rec = Recording.from_file(path, recording_id=f"r{i}")
        sups = (
            []
            if custom == "none"
            else [
                SupervisionSegment(f"s{i}", rec.id, 0.0, rec.duration, text="words", custom=custom)
            ]
        )
        cuts.append(MonoCut(f"c{i}", 0.0, rec.duration, 0, recording=rec, supervisions=sups))
    CutSet.from_cuts(cuts).to_file(tmp_path / "cuts.jsonl.gz")
    result = import_manifest(tmp_path / "cuts.jsonl.gz", "lhotse")
    assert result.frame["clip_id"].tolist() == ["c0"]
    assert result.problems["item"].tolist() == ["c1", "c2", "c3"]
    assert result.problems["problem"].str.contains("caption").all()


def test_export_of_import_reproduces_a_lhotse_cutset(tmp_path):
    """A cut set made by lhotse (recording ids, M/F genders, custom levels in its own words)
    comes back with the same cuts, recordings and supervisions."""
    from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

    cuts = []
    for i in range(3):
        path = write_voice_like(tmp_path / "wav" / f"utt{i}.wav", seconds=0.5)
        rec = Recording.from_file(path, recording_id=f"rec-{i}")
        start, duration = (0.0, rec.duration) if i else (0.1, 0.3)
        sup = SupervisionSegment(
            id=f"utt{i}",
            recording_id=rec.id,
            start=0.0,
            duration=duration,
            channel=0,
            text=f"words {i}",
            speaker=f"spk{i}",
            gender=["F", "M", "F"][i],
            language="English",
            custom={
                "caption": f"Caption {i}.",
                "emotion": ["ang", "happy", "sad"][i],
                "pitch": "high",
            },
        )
        cuts.append(MonoCut(f"utt{i}", start, duration, 0, recording=rec, supervisions=[sup]))
    original = CutSet.from_cuts(cuts)
    original.to_file(tmp_path / "in.jsonl.gz")
    frame = import_manifest(tmp_path / "in.jsonl.gz", "lhotse").frame
    assert frame["emotion"].tolist() == ["unknown", "happy", "sad"]
    out = export_manifest(frame, tmp_path / "out.jsonl.gz", "lhotse")
    assert [c.to_dict() for c in CutSet.from_file(out)] == [c.to_dict() for c in original]


def test_bad_files_are_one_line_errors_not_tracebacks(captioned, tmp_path, capsys):
    import gzip

    # an export whose audio is gone
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip_id,audio_path,caption\na,/nonexistent/a.wav,a calm voice\n")
    out = tmp_path / "cuts.jsonl.gz"
    assert (
        main(
            [
                "dataset",
                "export",
                "--manifest",
                str(manifest),
                "--format",
                "lhotse",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: cannot export clip a: its audio /nonexistent/a.wav is not found "
        "(lhotse needs every recording's header; fix or drop the row)"
    )
    # a cuts file cut short (click would print only "Aborted." for the EOFError)
    good = tmp_path / "good.jsonl.gz"
    export_manifest(captioned, good, "lhotse")
    data = good.read_bytes()
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    code = main(
        [
            "dataset",
            "import",
            "--input",
            str(tmp_path / "cut.jsonl.gz"),
            "--format",
            "lhotse",
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: cannot read cuts file") and "\n" not in err
    assert gzip.decompress(data)  # the untouched file still reads

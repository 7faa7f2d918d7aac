"""The FS-CLAP CSV against the FS-CLAP authors' loader (``src/dataset.py`` ``TrainDataset``):
``pd.read_csv``, columns ``wav_fp,style_prompt``, rows kept when ``os.path.exists(wav_fp)`` from
the working directory of whoever trains."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from fsclap.cli import main
from fsclap.manifest import ClipManifest
from fsclap.testing.style_audio import write_voice_like
from pipeline.formats import export_manifest, import_manifest


def authors_loader(csv_paths: list[Path], cwd: Path) -> pd.DataFrame:
    """The FS-CLAP authors' rule, run from ``cwd``: read each CSV, require the two columns, keep
    the rows whose ``wav_fp`` exists."""
    here = os.getcwd()
    os.chdir(cwd)
    try:
        df = pd.concat([pd.read_csv(p) for p in csv_paths], ignore_index=True)
        assert {"wav_fp", "style_prompt"} <= set(df.columns)
        return df[df["wav_fp"].apply(os.path.exists)].reset_index(drop=True)
    finally:
        os.chdir(here)


@pytest.fixture()
def thirty(tmp_path) -> pd.DataFrame:
    paths = [write_voice_like(tmp_path / "data" / f"w{i:02d}.wav", seconds=0.2) for i in range(30)]
    return pd.DataFrame(
        {"audio_path": [str(p) for p in paths], "caption": [f"Clip {i}." for i in range(30)]}
    )


def test_authors_loader_keeps_every_exported_row_from_any_folder(thirty, tmp_path):
    out = export_manifest(thirty, tmp_path / "exports" / "train.csv", "fsclap-csv")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    kept = authors_loader([out], elsewhere)
    assert len(kept) == 30  # relative-to-CSV paths kept 0 of 30 here
    assert kept["wav_fp"].tolist() == thirty["audio_path"].tolist()  # absolute, as given
    assert kept["style_prompt"].tolist() == thirty["caption"].tolist()


def test_relative_paths_option_is_relative_to_the_csv(thirty, tmp_path):
    out = export_manifest(
        thirty, tmp_path / "exports" / "train.csv", "fsclap-csv", relative_paths=True
    )
    assert pd.read_csv(out)["wav_fp"][0] == os.path.join("..", "data", "w00.wav")
    assert len(authors_loader([out], tmp_path / "exports")) == 30
    assert ClipManifest.read(out).frame["audio_path"].tolist() == [
        os.path.join(tmp_path, "exports", "..", "data", f"w{i:02d}.wav") for i in range(30)
    ]


def test_import_resolves_relative_paths_like_the_authors(tmp_path, monkeypatch):
    """Relative ``wav_fp`` is relative to the working directory (not the CSV's folder), then
    ``--audio-root``; a row whose audio exists in neither is a problem row."""
    work, other = tmp_path / "work", tmp_path / "other"
    write_voice_like(work / "wavs" / "a.wav", seconds=0.2)
    write_voice_like(other / "wavs" / "b.wav", seconds=0.2)
    write_voice_like(tmp_path / "csvdir" / "wavs" / "c.wav", seconds=0.2)  # beside the CSV only
    csv = tmp_path / "csvdir" / "train.csv"
    csv.write_text(
        "wav_fp,style_prompt\nwavs/a.wav,A.\nwavs/b.wav,B.\nwavs/c.wav,C.\n", encoding="utf-8"
    )
    monkeypatch.chdir(work)
    assert len(authors_loader([csv], work)) == 1
    result = import_manifest(csv, "fsclap-csv")
    assert result.frame["audio_path"].tolist() == [str(work / "wavs" / "a.wav")]
    assert result.problems["item"].tolist() == ["wavs/b.wav", "wavs/c.wav"]
    assert result.problems["problem"].str.contains("not found").all()
    with_root = import_manifest(csv, "fsclap-csv", audio_root=other)
    assert with_root.frame["audio_path"].tolist() == [
        str(work / "wavs" / "a.wav"),
        str(other / "wavs" / "b.wav"),
    ]


def test_cli_import_lists_missing_audio_and_exits_3(tmp_path, monkeypatch, capsys):
    write_voice_like(tmp_path / "a.wav", seconds=0.2)
    csv = tmp_path / "train.csv"
    csv.write_text(f"wav_fp,style_prompt\n{tmp_path / 'a.wav'},A.\nnope.wav,B.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args = ["dataset", "import", "--input", str(csv), "--format", "fsclap-csv"]
    assert main([*args, "--out", str(tmp_path / "m" / "m.csv")]) == 3
    assert "imported 1 clips; 1 row(s) left out" in capsys.readouterr().out
    problems = pd.read_csv(tmp_path / "m" / "m.problems.csv")
    assert problems["item"].tolist() == ["nope.wav"]
    # the written manifest holds paths relative to its own folder
    assert pd.read_csv(tmp_path / "m" / "m.csv")["audio_path"].tolist() == [
        os.path.join("..", "a.wav")
    ]
    assert ClipManifest.read(tmp_path / "m" / "m.csv").frame["audio_path"].map(
        os.path.normpath
    ).tolist() == [str(tmp_path / "a.wav")]


def test_export_of_import_reproduces_the_file(tmp_path, monkeypatch):
    for name in ("a", "b"):
        write_voice_like(tmp_path / "wavs" / f"{name}.wav", seconds=0.2)
    csv = tmp_path / "train.csv"
    csv.write_text(
        f"wav_fp,style_prompt,speaker_id,gender\nwavs/a.wav,A calm voice. ,s1,female\n"
        f'{tmp_path / "wavs" / "b.wav"},"Loud, fast.",s2,male\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    frame = import_manifest(csv, "fsclap-csv").frame
    out = export_manifest(frame, tmp_path / "out" / "train.csv", "fsclap-csv")
    before, after = pd.read_csv(csv, dtype=str), pd.read_csv(out, dtype=str)
    assert after.columns.tolist() == before.columns.tolist()
    before["wav_fp"] = before["wav_fp"].map(os.path.abspath)  # paths compared after resolving
    pd.testing.assert_frame_equal(after, before)


def test_import_of_export_keeps_what_the_fsclap_csv_carries(captioned, tmp_path):
    out = export_manifest(captioned, tmp_path / "f.csv", "fsclap-csv")
    assert pd.read_csv(out).columns[:2].tolist() == ["wav_fp", "style_prompt"]
    back = import_manifest(out, "fsclap-csv").frame
    for col in ("clip_id", "audio_path", "caption", "caption_zh", "text", "speaker_id", "split"):
        assert back[col].tolist() == captioned[col].tolist(), col
    for col in ("gender", "pitch", "speed", "energy", "emotion"):
        assert back[col].replace("", None).tolist() == captioned[col].tolist(), col
    manifest = ClipManifest.read(out)  # the FS-CLAP CSV is a clip manifest too
    assert manifest.frame["audio_path"].tolist() == captioned["audio_path"].tolist()

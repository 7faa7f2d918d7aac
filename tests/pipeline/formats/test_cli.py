"""``fsclap dataset import|export``: the written clip manifest holds paths relative to its own
folder (fsclap's rule, which ``fsclap.manifest`` resolves), options go to the formats they fit."""

from __future__ import annotations

import os

import pandas as pd

from fsclap.cli import main
from fsclap.manifest import ClipManifest
from fsclap.testing.style_audio import write_voice_like

HEADER = "item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt"


def test_dataset_cli_import_export(tmp_path, capsys, monkeypatch):
    audio = tmp_path / "textrol" / "audio"
    write_voice_like(audio / "CREMA-D" / "AudioWAV" / "1060_IWL_FEA_XX.wav", seconds=0.5)
    write_voice_like(audio / "ESD" / "0020" / "0020_000746.wav", f0_hz=180, seconds=0.5)
    write_voice_like(audio / "MEAD" / "M026" / "013.wav", f0_hz=140, seconds=0.5)
    write_voice_like(audio / "MEAD" / "W026" / "013.wav", f0_hz=220, seconds=0.5)
    (tmp_path / "textrol" / "caption.csv").write_text(
        f"{HEADER}\n"
        "CREMA-D-AudioWAV-1060_IWL_FEA_XX,low,low,low,F,fear,CREMA-D-1060,Alarm clock,A fearful speaker.\n"
        "ESD-0020-0020_000746,high,normal,normal,M,happy,ESD-0020,Never know.,A delighted speaker.\n"
        "MEAD-M026-013,low,normal,low,M,surprised,MEAD-M026,Perfume,An astonished speaker.\n"
        "MEAD-W026-013,normal,high,high,F,contempt,MEAD-W026,No chance,A scornful speaker.\n"
        "MEAD-M099-audio-angry-level_1-001,low,normal,low,M,angry,MEAD-M099,Missing,An angry speaker.\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "work" / "m.parquet"
    args = ["dataset", "import", "--input", "textrol/caption.csv", "--format", "textrolspeech"]
    assert main([*args, "--audio-root", "textrol/audio", "--out", "work/m.parquet"]) == 3
    assert "imported 4 clips; 1 row(s) left out" in capsys.readouterr().out
    assert (tmp_path / "work" / "m.problems.csv").exists()
    stored = pd.read_parquet(out)["audio_path"].tolist()
    assert stored[0] == os.path.join(
        "..", "textrol", "audio", "CREMA-D", "AudioWAV", "1060_IWL_FEA_XX.wav"
    )
    manifest = ClipManifest.read(out)  # relative paths resolve against the manifest's folder
    assert manifest.problems().empty
    assert [os.path.normpath(p) for p in manifest.frame["audio_path"]] == [
        str(audio / "CREMA-D" / "AudioWAV" / "1060_IWL_FEA_XX.wav"),
        str(audio / "ESD" / "0020" / "0020_000746.wav"),
        str(audio / "MEAD" / "M026" / "013.wav"),
        str(audio / "MEAD" / "W026" / "013.wav"),
    ]
    monkeypatch.chdir(tmp_path / "textrol")  # relative --manifest, another working directory
    export = ["dataset", "export", "--manifest", "../work/m.parquet", "--format"]
    assert main([*export, "fsclap-csv", "--out", str(tmp_path / "x.csv")]) == 0
    assert len(ClipManifest.read(tmp_path / "x.csv")) == 4
    assert pd.read_csv(tmp_path / "x.csv")["wav_fp"].map(os.path.isabs).all()
    assert main([*export, "textrolspeech", "--out", str(tmp_path / "t.csv")]) == 0
    assert f"item names resolve against --audio-root {audio}" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "t.csv", dtype=str, keep_default_na=False)
    assert table.columns.tolist() == HEADER.split(",")
    assert table["item_name"][0] == "CREMA-D-AudioWAV-1060_IWL_FEA_XX"
    assert table["emotion"].tolist() == ["fear", "happy", "surprised", "contempt"]
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "publish", "--manifest", str(out), "--out", str(tmp_path / "ds")]) == 0
    assert "by speaker (no drama ids)" in capsys.readouterr().out
    assert main([*export, "nope", "--out", str(tmp_path / "y")]) == 2


def test_a_clean_import_exits_0_and_drops_a_stale_problems_file(tmp_path):
    write_voice_like(tmp_path / "a.wav", seconds=0.3)
    (tmp_path / "f.csv").write_text(f"wav_fp,style_prompt\n{tmp_path / 'a.wav'},A.\n")
    (tmp_path / "m.problems.csv").write_text("row,item,problem\n0,x,old\n")
    args = ["dataset", "import", "--input", str(tmp_path / "f.csv"), "--format", "fsclap-csv"]
    assert main([*args, "--out", str(tmp_path / "m.csv")]) == 0
    assert not (tmp_path / "m.problems.csv").exists()


def test_options_a_format_ignores_are_refused(tmp_path, capsys):
    write_voice_like(tmp_path / "a.wav", seconds=0.3)
    (tmp_path / "m.csv").write_text(f"audio_path,caption\n{tmp_path / 'a.wav'},A.\n")
    export = [
        "dataset",
        "export",
        "--manifest",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "o"),
    ]
    assert main([*export, "--format", "lhotse", "--audio-root", str(tmp_path)]) == 2
    assert main([*export, "--format", "textrolspeech", "--relative-paths"]) == 2
    assert "--relative-paths applies to fsclap-csv" in capsys.readouterr().err
    imp = [
        "dataset",
        "import",
        "--input",
        str(tmp_path / "m.csv"),
        "--out",
        str(tmp_path / "n.csv"),
    ]
    assert main([*imp, "--format", "hf-parquet", "--encoding", "gbk"]) == 2

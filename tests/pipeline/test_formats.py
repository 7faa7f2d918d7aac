import json
import os

import pandas as pd
import pytest

from fsclap.cli import main
from fsclap.manifest import ClipManifest
from fsclap.testing.style_audio import write_voice_like
from pipeline.formats import export_manifest, import_manifest

TEXTROL_FILES = {
    "CREMA-D-AudioWAV-1060_IWL_FEA_XX": "CREMA-D/AudioWAV/1060_IWL_FEA_XX.wav",
    "MEAD-M026-audio-surprised-level_1-013": "MEAD/M026/audio/surprised/level_1/013.wav",
    "MEAD-W026-audio-sad-level_1-013": "MEAD/W026/audio/sad/level_1/013.wav",  # same file name, other folder
    "Emotional Speech Dataset (ESD)-Emotion Speech Dataset-0020-Happy-0020_000746": "Emotional Speech Dataset (ESD)/Emotion Speech Dataset/0020/Happy/0020_000746.wav",
}
TEXTROL_CSV = """item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt
CREMA-D-AudioWAV-1060_IWL_FEA_XX,low,low,low,F,fear,CREMA-D-1060,I would like a new alarm clock,"With a hushed tone and slow speech, speaker fearfully embodies a relaxed demeanor."
MEAD-M026-audio-surprised-level_1-013,low,normal,low,M,surprised,MEAD-M026,The clumsy customer spilled some expensive perfume,A astonished speaker with speaker's usual pitch adopts a slow-speaking style.
MEAD-W026-audio-sad-level_1-013,normal,high,high,F,contempt,MEAD-W026,There's no chance now,The scornful speaker's voice was charged with energy.
Emotional Speech Dataset (ESD)-Emotion Speech Dataset-0020-Happy-0020_000746,high,normal,normal,M,happy,ESD-0020,They'd never know.,A delighted speaker talks fast.
MEAD-M099-audio-angry-level_1-001,low,normal,low,M,angry,MEAD-M099,Missing audio,An angry speaker.
"""


@pytest.fixture()
def textrol(tmp_path):
    root = tmp_path / "textrol"
    for i, rel in enumerate(TEXTROL_FILES.values()):
        write_voice_like(root / "audio" / rel, f0_hz=120 + 20 * i, seconds=0.6)
    (root / "caption.csv").write_text(TEXTROL_CSV, encoding="utf-8")
    return root


def test_textrolspeech_release_layout_imports_with_item_names_resolved(textrol):
    result = import_manifest(textrol / "caption.csv", "textrolspeech", textrol / "audio")
    frame = result.frame.set_index("clip_id")
    assert len(frame) == 4 and list(result.problems["item"]) == [
        "MEAD-M099-audio-angry-level_1-001"
    ]
    for item, rel in TEXTROL_FILES.items():
        assert frame.loc[item, "audio_path"] == str(textrol / "audio" / rel)
    crema = frame.loc["CREMA-D-AudioWAV-1060_IWL_FEA_XX"]
    assert (crema["gender"], crema["speed"], crema["pitch"], crema["emotion"]) == (
        "female",
        "slow",
        "low",
        "fearful",
    )
    contempt = frame.loc["MEAD-W026-audio-sad-level_1-013"]
    assert contempt["emotion"] == "unknown" and contempt["emotion_label"] == "contempt"
    assert (
        frame.loc[
            "Emotional Speech Dataset (ESD)-Emotion Speech Dataset-0020-Happy-0020_000746", "speed"
        ]
        == "fast"
    )
    assert ClipManifest.from_frame(result.frame).problems().empty


def test_textrolspeech_and_fsclap_csv_round_trips(textrol, tmp_path):
    frame = import_manifest(textrol / "caption.csv", "textrolspeech", textrol / "audio").frame
    out = export_manifest(frame, tmp_path / "out" / "textrol.csv", "textrolspeech")
    back = import_manifest(out, "textrolspeech").frame
    cols = [
        "clip_id",
        "audio_path",
        "caption",
        "text",
        "speaker_id",
        "gender",
        "pitch",
        "speed",
        "energy",
        "emotion",
    ]
    pd.testing.assert_frame_equal(back[cols], frame[cols])
    csv = export_manifest(frame, tmp_path / "out" / "fsclap.csv", "fsclap-csv")
    assert pd.read_csv(csv).columns[:2].tolist() == ["wav_fp", "style_prompt"]
    manifest = ClipManifest.read(csv)  # the FS-CLAP CSV is a clip manifest
    assert [os.path.normpath(p) for p in manifest.frame["audio_path"]] == frame[
        "audio_path"
    ].tolist()
    assert manifest.frame["caption"].tolist() == frame["caption"].tolist()
    assert manifest.frame["emotion"].tolist() == frame["emotion"].tolist()


def test_promptspeech_tables_resolve_ids_and_paths(tmp_path):
    root = tmp_path / "ps"
    write_voice_like(
        root / "LibriTTS" / "84" / "121123" / "84_121123_000007_000001.wav", seconds=0.5
    )
    write_voice_like(root / "synthetic" / "s001.wav", seconds=0.5)
    (root / "prompts.tsv").write_text(
        "utt_id\tstyle_prompt\tgender\tvolume\n"
        "84_121123_000007_000001\tA man speaks loudly.\tmale\tloud\n"
        "nope_0001\tNo audio.\tfemale\tlow\n",
        encoding="utf-8",
    )
    result = import_manifest(root / "prompts.tsv", "promptspeech", root)
    assert result.frame.loc[0, "audio_path"].endswith("84/121123/84_121123_000007_000001.wav")
    assert (result.frame.loc[0, "gender"], result.frame.loc[0, "energy"]) == ("male", "high")
    assert result.problems["problem"].str.contains("no audio file named nope_0001").all()
    (root / "p.jsonl").write_text(
        json.dumps({"wav": "synthetic/s001.wav", "prompt": "Quiet and slow."}) + "\n"
    )
    assert (
        import_manifest(root / "p.jsonl", "promptspeech").frame.loc[0, "caption"]
        == "Quiet and slow."
    )
    (root / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="need a prompt column"):
        import_manifest(root / "bad.csv", "promptspeech")


@pytest.fixture()
def captioned(tmp_path):
    rows = []
    for i, split in enumerate(["train", "train", "val", "test"]):
        path = write_voice_like(
            tmp_path / "clips" / f"c{i}.wav", f0_hz=110 + 30 * i, seconds=0.4 + 0.1 * i
        )
        rows.append(
            {
                "clip_id": f"c{i}",
                "audio_path": str(path),
                "caption": f"A speaker talks {i}.",
                "caption_zh": f"说话人{i}",
                "speaker_id": f"s{i}",
                "gender": ["male", "female"][i % 2],
                "pitch": "high",
                "emotion": "unknown",
                "split": split,
                "duration_s": 0.4 + 0.1 * i,
            }
        )
    return pd.DataFrame(rows)


def test_hf_parquet_layout_loads_with_datasets_and_round_trips(captioned, tmp_path):
    import datasets

    out = export_manifest(captioned, tmp_path / "hf", "hf-parquet")
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
        "val-00000-of-00001.parquet",
    ]
    loaded = datasets.load_dataset(str(out))
    assert {k: len(v) for k, v in loaded.items()} == {"train": 2, "val": 1, "test": 1}
    assert isinstance(loaded["train"].features["audio"], datasets.Audio)
    assert (
        loaded["train"].cast_column("audio", datasets.Audio(decode=False))[0]["audio"]["bytes"]
        == (tmp_path / "clips" / "c0.wav").read_bytes()
    )
    back = import_manifest(out, "hf-parquet").frame.set_index("clip_id").loc[captioned["clip_id"]]
    assert back["caption"].tolist() == captioned["caption"].tolist()
    assert back["split"].tolist() == captioned["split"].tolist()
    for clip, path in zip(captioned["clip_id"], captioned["audio_path"]):
        assert open(back.loc[clip, "audio_path"], "rb").read() == open(path, "rb").read()


def test_lhotse_cuts_round_trip(captioned, tmp_path):
    captioned = captioned.copy()
    captioned["start_s"] = [None, 0.1, None, None]
    captioned["end_s"] = [None, 0.4, None, None]
    out = export_manifest(captioned, tmp_path / "cuts.jsonl.gz", "lhotse")
    from lhotse import CutSet

    cuts = CutSet.from_file(out)
    assert len(cuts) == 4 and cuts[1].duration == pytest.approx(0.3)
    back = import_manifest(out, "lhotse").frame
    assert back["caption"].tolist() == captioned["caption"].tolist()
    assert back["audio_path"].tolist() == captioned["audio_path"].tolist()
    assert back["gender"].tolist() == captioned["gender"].tolist()
    assert back.loc[1, "start_s"] == pytest.approx(0.1) and back.loc[1, "end_s"] == pytest.approx(
        0.4
    )
    assert pd.isna(back.loc[0, "start_s"])


def test_dataset_cli_import_export(textrol, tmp_path, capsys):
    out = tmp_path / "m.parquet"
    assert (
        main(
            [
                "dataset",
                "import",
                "--input",
                str(textrol / "caption.csv"),
                "--format",
                "textrolspeech",
                "--audio-root",
                str(textrol / "audio"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "imported 4 clips; 1 row(s) left out" in capsys.readouterr().out
    assert (tmp_path / "m.problems.csv").exists() and ClipManifest.read(out).problems().empty
    assert (
        main(
            [
                "dataset",
                "export",
                "--manifest",
                str(out),
                "--format",
                "fsclap-csv",
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == 0
    )
    assert len(ClipManifest.read(tmp_path / "x.csv")) == 4
    assert main(["dataset", "publish", "--manifest", str(out), "--out", str(tmp_path / "ds")]) == 0
    assert "by speaker (no drama ids)" in capsys.readouterr().out
    assert (
        main(
            [
                "dataset",
                "export",
                "--manifest",
                str(out),
                "--format",
                "nope",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )

"""TextrolSpeech / ControlSpeech CSV: rows shaped like ControlSpeech's ``VccmDataset/
controlspeech_test*.csv`` (9 columns, UTF-8, LF, ``dur`` the tempo level, ``nan`` emotions on
LibriTTS rows, ``None`` in the ``*_prompt`` files), audio laid out as the original corpora."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd
import pytest

from fsclap.errors import FsclapError
from fsclap.manifest import ClipManifest
from fsclap.testing.style_audio import write_voice_like
from pipeline.formats import export_manifest, import_manifest

HEADER = "item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt"
TEXTROL_FILES = {
    "CREMA-D-AudioWAV-1060_IWL_FEA_XX": "CREMA-D/AudioWAV/1060_IWL_FEA_XX.wav",
    "MEAD-M026-audio-surprised-level_1-013": "MEAD/M026/audio/surprised/level_1/013.wav",
    "MEAD-W026-audio-sad-level_1-013": "MEAD/W026/audio/sad/level_1/013.wav",  # same name, other folder
    "Emotional Speech Dataset (ESD)-Emotion Speech Dataset-0020-Happy-0020_000746": "Emotional Speech Dataset (ESD)/Emotion Speech Dataset/0020/Happy/0020_000746.wav",
    "4965_27768_000059_000002": "LibriTTS/train-clean-100/4965/27768/4965_27768_000059_000002.wav",
}
ROWS = [
    'CREMA-D-AudioWAV-1060_IWL_FEA_XX,low,low,low,F,fear,CREMA-D-1060,I would like a new alarm clock,"With a hushed tone and slow speech, speaker fearfully embodies a relaxed demeanor."',
    "MEAD-M026-audio-surprised-level_1-013,low,normal,low,M,surprised,MEAD-M026,The clumsy customer spilled some expensive perfume,A astonished speaker with speaker's usual pitch adopts a slow-speaking style.",
    "MEAD-W026-audio-sad-level_1-013,normal,high,high,F,contempt,MEAD-W026,There's no chance now,The scornful speaker's voice was charged with energy.",
    "Emotional Speech Dataset (ESD)-Emotion Speech Dataset-0020-Happy-0020_000746,high,normal,normal,M,happy,ESD-0020,They'd never know.,A delighted speaker talks fast.",
    '4965_27768_000059_000002,high,high,low,F,nan,4965,"""With a quick, dexterous movement"" of his hand.","With a brisk tempo and elevated tone, the speaker\'s delivery creates a faint murmuring sound."',
]
MISSING = "MEAD-M099-audio-angry-level_1-001,low,normal,low,M,angry,MEAD-M099,Missing audio,An angry speaker."
TEXTROL_CSV = "\n".join([HEADER, *ROWS, MISSING]) + "\n"


@pytest.fixture()
def textrol(tmp_path) -> Path:
    root = tmp_path / "textrol"
    for i, rel in enumerate(TEXTROL_FILES.values()):
        write_voice_like(root / "audio" / rel, f0_hz=120 + 20 * i, seconds=0.6)
    (root / "caption.csv").write_bytes(TEXTROL_CSV.encode("utf-8"))
    return root


def controlspeech_lookup(csv_path: Path, data_dir: Path) -> dict[str, str]:
    """ControlSpeech's own rule (``libri_emo_preprocess.meta_data``): every wav under the data
    folder is keyed by its file stem; a row's item_name is looked up there."""
    by_stem = {Path(p).stem: p for p in data_dir.rglob("*.wav")}
    with open(csv_path, encoding="utf-8", newline="") as f:
        return {r["item_name"]: str(by_stem[r["item_name"]]) for r in csv.DictReader(f)}


def test_release_layout_imports_with_item_names_resolved(textrol):
    result = import_manifest(textrol / "caption.csv", "textrolspeech", textrol / "audio")
    frame = result.frame.set_index("clip_id")
    assert len(frame) == 5
    assert list(result.problems["item"]) == ["MEAD-M099-audio-angry-level_1-001"]
    for item, rel in TEXTROL_FILES.items():
        assert frame.loc[item, "audio_path"] == str(textrol / "audio" / rel)
    crema = frame.loc["CREMA-D-AudioWAV-1060_IWL_FEA_XX"]
    assert (crema["gender"], crema["speed"], crema["pitch"], crema["emotion"]) == (
        "female",
        "slow",
        "low",
        "fearful",
    )
    assert crema["emotion_label"] == "fear" and crema["speaker_id"] == "CREMA-D-1060"
    contempt = frame.loc["MEAD-W026-audio-sad-level_1-013"]
    assert contempt["emotion"] == "unknown" and contempt["emotion_label"] == "contempt"
    libri = frame.loc["4965_27768_000059_000002"]
    assert (libri["emotion"], libri["emotion_label"], libri["speed"]) == ("unknown", "nan", "fast")
    assert libri["text"] == '"With a quick, dexterous movement" of his hand.'
    assert ClipManifest.from_frame(result.frame).problems().empty  # levels valid, audio present


def test_missing_audio_is_a_problem_not_a_file_sharing_a_name_suffix(textrol):
    """The old lookup matched ``...-angry-level_1-013`` to another speaker's ``angry/level_1/013.wav``
    (and any lone ``013.wav``) instead of reporting the row."""
    write_voice_like(textrol / "audio" / "MEAD/M026/audio/angry/level_1/013.wav", seconds=0.3)
    write_voice_like(textrol / "audio" / "other/007.wav", seconds=0.3)
    (textrol / "c.csv").write_text(
        f"{HEADER}\n"
        "MEAD-M099-audio-angry-level_1-013,low,normal,low,M,angry,MEAD-M099,t,An angry speaker.\n"
        "MEAD-M099-audio-angry-level_1-007,low,normal,low,M,angry,MEAD-M099,t,An angry speaker.\n",
        encoding="utf-8",
    )
    result = import_manifest(textrol / "c.csv", "textrolspeech", textrol / "audio")
    assert result.frame.empty
    assert list(result.problems["item"]) == [
        "MEAD-M099-audio-angry-level_1-013",
        "MEAD-M099-audio-angry-level_1-007",
    ]
    assert result.problems["problem"].str.contains("no audio file for item 'MEAD-M099").all()


def test_item_names_may_name_folders_above_the_audio_root(textrol):
    """With the root at ``.../MEAD``, ``MEAD-M026-...`` names ``M026/...`` below it; another
    corpus name in front does not."""
    mead = textrol / "audio" / "MEAD"
    result = import_manifest(textrol / "caption.csv", "textrolspeech", mead)
    assert sorted(result.frame["clip_id"]) == [
        "MEAD-M026-audio-surprised-level_1-013",
        "MEAD-W026-audio-sad-level_1-013",
    ]
    (textrol / "x.csv").write_text(
        f"{HEADER}\nOTHER-M026-audio-surprised-level_1-013,low,low,low,M,sad,s,t,A sad speaker.\n",
        encoding="utf-8",
    )
    assert import_manifest(textrol / "x.csv", "textrolspeech", mead).frame.empty


def test_controlspeech_flattened_layout_resolves_by_item_name(tmp_path):
    """ControlSpeech keeps emotional clips as ``data/ei_data/**/<item_name>.wav`` and LibriTTS in
    its own tree; both are exact item-name matches (the file's stem is the whole item name)."""
    data = tmp_path / "data"
    for item in TEXTROL_FILES:
        sub = "LibriTTS/train-clean-100/4965/27768" if item[0].isdigit() else "ei_data/part1"
        write_voice_like(data / sub / f"{item}.wav", seconds=0.3)
    (tmp_path / "c.csv").write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    result = import_manifest(tmp_path / "c.csv", "textrolspeech", data)
    assert result.problems.empty
    assert dict(zip(result.frame["clip_id"], result.frame["audio_path"])) == controlspeech_lookup(
        tmp_path / "c.csv", data
    )


def test_export_of_import_reproduces_the_file(textrol, tmp_path):
    """9 columns, TextrolSpeech's own labels (``fear``, ``contempt``, ``nan``, ``M``/``F``,
    ``dur`` low/normal/high), UTF-8, LF: the same bytes as the rows read."""
    result = import_manifest(textrol / "caption.csv", "textrolspeech", textrol / "audio")
    out = export_manifest(result.frame, tmp_path / "out" / "t.csv", "textrolspeech")
    expected = "\n".join([HEADER, *ROWS]) + "\n"  # the row without audio was left out
    assert out.read_bytes() == expected.encode("utf-8")
    # the names resolve against the export's audio root: the deepest folder holding the audio
    again = import_manifest(out, "textrolspeech", textrol / "audio")
    cols = ["clip_id", "audio_path", "caption", "text", "speaker_id", "emotion", "emotion_label"]
    pd.testing.assert_frame_equal(again.frame[cols], result.frame[cols])


def test_textrolspeech_export_of_an_fsclap_manifest_reads_back(captioned, tmp_path):
    out = export_manifest(captioned, tmp_path / "t.csv", "textrolspeech")
    with open(out, encoding="utf-8", newline="") as f:
        text = f.read()
        rows = list(csv.DictReader(text.splitlines()))
    assert "\r" not in text and text.splitlines()[0] == HEADER
    assert [(r["gender"], r["dur"], r["emotion"]) for r in rows] == [
        ("M", "low", "fear"),
        ("F", "high", "happy"),
        ("M", "normal", "nan"),
        ("F", "", "neutral"),
    ]
    # item names are the file stems: ControlSpeech's lookup finds them
    assert [r["item_name"] for r in rows] == ["c0", "c1", "c2", "c3"]
    assert controlspeech_lookup(out, tmp_path) == dict(
        zip(captioned["clip_id"], captioned["audio_path"])
    )
    back = import_manifest(out, "textrolspeech").frame  # stems resolve under the CSV's folder too
    for col in ("clip_id", "audio_path", "caption", "text", "speaker_id", "gender", "emotion"):
        assert back[col].tolist() == captioned[col].tolist(), col
    for col in ("pitch", "speed", "energy"):
        assert back[col].tolist() == captioned[col].tolist(), col


def test_export_names_clips_by_path_when_stems_repeat(tmp_path):
    paths = [write_voice_like(tmp_path / "a" / d / "x.wav", seconds=0.3) for d in ("d1", "d2")]
    frame = pd.DataFrame(
        {"clip_id": ["p", "q"], "audio_path": [str(p) for p in paths], "caption": ["A.", "B."]}
    )
    out = export_manifest(frame, tmp_path / "out" / "t.csv", "textrolspeech")
    # the audio root is the deepest folder holding both files: tmp_path/a
    assert pd.read_csv(out)["item_name"].tolist() == ["d1-x", "d2-x"]
    back = import_manifest(out, "textrolspeech", tmp_path / "a").frame
    assert back["audio_path"].tolist() == [str(p) for p in paths]


def test_an_edited_level_wins_over_the_kept_label(textrol, tmp_path):
    frame = import_manifest(textrol / "caption.csv", "textrolspeech", textrol / "audio").frame
    frame.loc[frame["clip_id"] == "CREMA-D-AudioWAV-1060_IWL_FEA_XX", "emotion"] = "sad"
    out = export_manifest(frame, tmp_path / "t.csv", "textrolspeech", audio_root=textrol / "audio")
    table = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("item_name")
    assert table.loc["CREMA-D-AudioWAV-1060_IWL_FEA_XX", "emotion"] == "sad"
    assert table.loc["MEAD-W026-audio-sad-level_1-013", "emotion"] == "contempt"


def test_repeated_rows_are_reported_and_repeated_items_with_new_prompts_kept(textrol):
    rows = [ROWS[0], ROWS[0], ROWS[0].replace("relaxed demeanor", "calm air")]
    (textrol / "r.csv").write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    result = import_manifest(textrol / "r.csv", "textrolspeech", textrol / "audio")
    item = "CREMA-D-AudioWAV-1060_IWL_FEA_XX"
    assert result.frame["clip_id"].tolist() == [item, f"{item}#2"]
    assert result.frame["item_name"].tolist() == [item, item]
    assert result.problems["problem"].tolist() == ["repeated row (same item_name)"]


def test_exports_of_segments_are_refused(captioned, tmp_path):
    captioned["start_s"] = [None, 0.1, None, None]
    with pytest.raises(FsclapError, match="segments"):
        export_manifest(captioned, tmp_path / "t.csv", "textrolspeech")
    assert not os.path.exists(tmp_path / "t.csv")

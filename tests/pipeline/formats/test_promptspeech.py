"""PromptSpeech: rows shaped like the release's ``Real_training.csv`` (UTF-8, CRLF, prompts ending
in spaces, ``content_prompt`` = ``original|normalised``) and ``Synthesized_test.csv`` (GBK, no id
column, an ``emotion`` column), plus the generic prompt tables the reader also takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsclap.cli import main
from fsclap.manifest import ClipManifest, ManifestError
from fsclap.testing.style_audio import write_voice_like
from pipeline.formats import export_manifest, import_manifest

REAL_HEADER = "item_name,spk_id,gender,pitch,speaking_speed,energy,style_prompt,content_prompt"
REAL_ROWS = [
    '1382_130549_000089_000000,1382,F,high,slow,normal,"Her sound height is really high, the volume is normal, but she speaks very slowly ",Degenerated into deadness and formality|Degenerated into deadness and formality',
    "84_121123_000007_000001,84,M,low,fast,high,A man speaks quickly and loudly in a low tone ,He gave himself to a sudden day-dream|He gave himself to a sudden day dream",
    '1382_130549_000092_000000,1382,F,normal,normal,low,Please say it quietly,"Marry some good, sensible girl.|Marry some good, sensible girl."',
]
SYNTH_HEADER = "gender,pitch,speaking_speed,energy,emotion,style_prompt,content_prompt"
SYNTH_ROWS = [
    'M,low,fast,high,general,"“Men, low tone”, said loudly and quickly ",It’s certain.|It’s certain.',
    "F,high,slow,low,whisper,A woman whispers slowly ,Look out!|Look out!",
    "F,normal,normal,normal,cheerful,A cheerful woman,Here am i.|Here am i.",
]


def crlf(*lines: str) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


@pytest.fixture()
def libritts(tmp_path) -> Path:
    root = tmp_path / "LibriTTS"
    for i, row in enumerate(REAL_ROWS):
        item = row.split(",")[0]
        spk, chapter = item.split("_")[:2]
        write_voice_like(
            root / "train-clean-100" / spk / chapter / f"{item}.wav",
            f0_hz=110 + 20 * i,
            seconds=0.4,
        )
    (tmp_path / "Real_training.csv").write_bytes(crlf(REAL_HEADER, *REAL_ROWS))
    return root


def test_release_layout_maps_speed_speaker_text_and_keeps_prompts_as_released(libritts, tmp_path):
    result = import_manifest(tmp_path / "Real_training.csv", "promptspeech", libritts)
    assert result.problems.empty
    row = result.frame.set_index("clip_id").loc["84_121123_000007_000001"]
    assert row["audio_path"].endswith("train-clean-100/84/121123/84_121123_000007_000001.wav")
    assert row["caption"] == "A man speaks quickly and loudly in a low tone "  # trailing space kept
    assert (row["gender"], row["pitch"], row["speed"], row["energy"]) == (
        "male",
        "low",
        "fast",
        "high",
    )
    assert row["speaker_id"] == "84" and row["text"] == "He gave himself to a sudden day-dream"
    assert (
        row["content_prompt"]
        == "He gave himself to a sudden day-dream|He gave himself to a sudden day dream"
    )
    assert ClipManifest.from_frame(result.frame).problems().empty


def test_export_of_import_reproduces_the_release_file(libritts, tmp_path):
    frame = import_manifest(tmp_path / "Real_training.csv", "promptspeech", libritts).frame
    out = export_manifest(
        frame, tmp_path / "out" / "Real_training.csv", "promptspeech", audio_root=libritts
    )
    assert out.read_bytes() == (tmp_path / "Real_training.csv").read_bytes()


def test_gbk_release_file_is_detected_and_an_id_column_is_asked_for(libritts, tmp_path):
    synth = tmp_path / "Synthesized_test.csv"
    synth.write_bytes("".join(x + "\r\n" for x in [SYNTH_HEADER, *SYNTH_ROWS]).encode("gbk"))
    with pytest.raises(ManifestError, match="add an item_name column"):
        import_manifest(synth, "promptspeech", libritts)
    ids = [r.split(",")[0] for r in REAL_ROWS]
    lines = [f"item_name,{SYNTH_HEADER}", *(f"{i},{r}" for i, r in zip(ids, SYNTH_ROWS))]
    synth.write_bytes("".join(x + "\r\n" for x in lines).encode("gbk"))
    for encoding in (None, "gbk"):
        result = import_manifest(synth, "promptspeech", libritts, encoding=encoding)
        assert result.frame["caption"].tolist()[0] == "“Men, low tone”, said loudly and quickly "
        assert result.frame["emotion"].tolist() == ["neutral", "unknown", "happy"]
        assert result.frame["emotion_label"].tolist() == ["general", "whisper", "cheerful"]
        assert result.frame["text"].tolist()[0] == "It’s certain."
    offset = synth.read_bytes().index("“".encode("gbk"))  # not "position 0" of some chunk
    with pytest.raises(ManifestError, match=f"as utf-8-sig: byte 0xa1 at offset {offset}$"):
        import_manifest(synth, "promptspeech", libritts, encoding="utf-8")
    # the emotion column goes back after energy, in PromptSpeech's words
    frame = import_manifest(synth, "promptspeech", libritts).frame
    out = export_manifest(frame, tmp_path / "s.csv", "promptspeech", audio_root=libritts)
    assert out.read_bytes().decode("utf-8") == "".join(x + "\r\n" for x in lines)


def test_utf8_with_bom_and_the_cli_encoding_option(libritts, tmp_path, capsys):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + crlf(REAL_HEADER, *REAL_ROWS))
    result = import_manifest(bom, "promptspeech", libritts)
    assert result.problems.empty and result.frame["item_name"][0] == "1382_130549_000089_000000"
    synth = tmp_path / "gbk.csv"
    synth.write_bytes(
        crlf(REAL_HEADER).decode().encode("gbk") + REAL_ROWS[0].replace("Her", "她").encode("gbk")
    )
    args = ["dataset", "import", "--input", str(synth), "--format", "promptspeech"]
    args += ["--audio-root", str(libritts), "--out", str(tmp_path / "m.parquet")]
    assert main([*args, "--encoding", "gbk"]) == 0
    assert ClipManifest.read(tmp_path / "m.parquet").frame["caption"][0].startswith("她 sound")
    assert main([*args, "--encoding", "utf-8"]) == 2
    assert "cannot decode" in capsys.readouterr().err


def test_prompt_tables_resolve_ids_and_paths(tmp_path):
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
    with pytest.raises(ManifestError, match="need a prompt column"):
        import_manifest(root / "bad.csv", "promptspeech")


def test_import_of_export_keeps_what_promptspeech_carries(captioned, tmp_path):
    out = export_manifest(captioned, tmp_path / "p.csv", "promptspeech")
    lines = out.read_bytes().decode("utf-8").split("\r\n")
    assert (
        lines[0]
        == "item_name,spk_id,gender,pitch,speaking_speed,energy,emotion,style_prompt,content_prompt"
    )
    assert lines[1] == "c0,s0,M,high,slow,low,fearful,A speaker talks 0. ,line 0|line 0"
    back = import_manifest(out, "promptspeech").frame  # ids are file stems under the CSV's folder
    for col in ("clip_id", "audio_path", "caption", "text", "speaker_id", "gender", "emotion"):
        assert back[col].tolist() == captioned[col].tolist(), col
    for col in ("pitch", "speed", "energy"):
        assert back[col].tolist() == captioned[col].tolist(), col

"""PromptSpeech (PromptTTS, Guo et al. 2023) and similar style-prompt tables.

The release (speechresearch.github.io ``dataset/promptspeech/*.zip``) holds CSVs with CRLF line
ends: ``Real_training.csv`` is ``item_name,spk_id,gender,pitch,speaking_speed,energy,style_prompt,
content_prompt`` (UTF-8; ``item_name`` a LibriTTS utterance id, i.e. the audio file's stem);
``Real_test.csv`` and ``Synthesized_test.csv`` (GBK) have no id column and ``Synthesized_*`` add
``emotion`` (``general``/``sad``/``whisper``/``shout``/``cheerful``) after ``energy``. Levels are
``M``/``F``, ``low``/``normal``/``high`` and speed ``slow``/``normal``/``fast``; ``content_prompt``
is the transcript twice, ``original|normalised``; many prompts end in a space, kept as released.

The reader takes CSV, TSV or JSON Lines with an audio column (``wav_fp``, ``wav_path``,
``audio_path``, ``path``, ``wav``, ``audio``, ``file``) *or* an id column (``item_name``,
``utt_id``, ``id``, ``key``, ``name``) and a prompt column (``style_prompt``, ``prompt``,
``style``, ``description``, ``caption``). An id resolves to the one audio file under the audio
root with that stem (LibriTTS ids such as ``84_121123_000007_000001`` are unique stems).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fsclap.errors import FsclapError
from fsclap.manifest import ManifestError
from pipeline.formats.common import (
    AudioIndex,
    ImportResult,
    absolute,
    decode_text,
    export_root,
    import_result,
    label_for,
    level_columns,
    read_csv,
    text_or_none,
    whole_files_only,
    write_csv,
)

FORMAT = "promptspeech"
AUDIO_COLUMNS = ("wav_fp", "wav_path", "audio_path", "path", "wav", "audio", "file")
ID_COLUMNS = ("item_name", "utt_id", "id", "key", "name")
PROMPT_COLUMNS = ("style_prompt", "prompt", "style", "description", "caption")
TEXT_COLUMNS = ("content_prompt", "text", "txt", "transcript")
SPEAKER_COLUMNS = ("spk_id", "speaker_id", "spk", "speaker")
LEVEL_COLUMNS = {
    "gender": "gender",
    "pitch": "pitch",
    "speaking_speed": "speed",
    "speed": "speed",
    "dur": "speed",
    "energy": "energy",
    "volume": "energy",
    "emotion": "emotion",
}
# fsclap's levels in PromptSpeech's words (levels not listed are spelled alike).
VOCABULARY = {
    "gender": {"male": "M", "female": "F"},
    "emotion": {"happy": "cheerful", "neutral": "general"},
}


def _read(path: Path, encoding: str | None) -> pd.DataFrame:
    if path.suffix.lower() not in (".jsonl", ".json"):
        return read_csv(path, encoding)
    try:
        lines = [json.loads(x) for x in decode_text(path, encoding).splitlines() if x.strip()]
    except ValueError as exc:
        raise ManifestError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    return pd.DataFrame(lines).astype(object).where(lambda t: t.notna(), "")


def read_promptspeech(
    path: str | Path, audio_root: str | Path | None = None, encoding: str | None = None
) -> ImportResult:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    table = _read(path, encoding)
    columns = {str(c).lower(): c for c in table.columns}
    audio_col = next((columns[c] for c in AUDIO_COLUMNS if c in columns), None)
    id_col = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    prompt_col = next((columns[c] for c in PROMPT_COLUMNS if c in columns), None)
    if prompt_col is None:
        raise ManifestError(
            f"{path}: need a prompt column ({'/'.join(PROMPT_COLUMNS)}) and an audio "
            f"({'/'.join(AUDIO_COLUMNS)}) or id ({'/'.join(ID_COLUMNS)}) column; have {list(table.columns)}"
        )
    if audio_col is None and id_col is None:
        raise ManifestError(
            f"{path} names no audio: add an item_name column (the utterance id: the audio file's "
            f"stem under --audio-root) or a wav_fp column (its path); have {list(table.columns)}"
        )
    text_col = next((columns[c] for c in TEXT_COLUMNS if c in columns), None)
    speaker_col = next((columns[c] for c in SPEAKER_COLUMNS if c in columns), None)
    levels = {columns[c]: a for c, a in LEVEL_COLUMNS.items() if c in columns}
    index = AudioIndex(audio_root or path.parent)
    rows, problems = [], []
    for i, r in enumerate(table.to_dict("records")):
        ident, wav = str(r.get(id_col) or ""), str(r.get(audio_col) or "")
        item = ident or wav or f"row{i}"
        audio, why = None, ""
        if wav:
            audio = index.resolve_path(wav, Path(absolute(path.parent)))
            why = "" if audio else f"audio {wav!r} not found"
        if audio is None and ident:
            audio, why = index.by_stem_name(Path(ident).stem)
        caption = str(r[prompt_col])
        if not caption.strip():
            problems.append((i, item, "empty prompt"))
            continue
        if audio is None:
            problems.append((i, item, why or "no id or audio path"))
            continue
        row = {
            "_row": i,
            "clip_id": ident or Path(str(audio)).stem,
            "item_name": ident,
            "audio_path": str(audio),
            "caption": caption,
            "source_format": FORMAT,
        }
        if text_col is not None:
            text = text_or_none(r[text_col])
            if text_col == columns.get("content_prompt"):
                row["content_prompt"] = r[text_col]  # written back as released
                text = text.split("|")[0] if text else None  # "original|normalised"
            row["text"] = text
        if speaker_col is not None:
            row["speaker_id"] = text_or_none(r[speaker_col])
        rows.append({**row, **level_columns(r, levels)})
    return import_result(rows, problems, "id")


def _content_prompt(row: dict) -> str:
    """The kept ``content_prompt`` while it still holds the row's text, else ``text|text``."""
    text = text_or_none(row.get("text"))
    kept = text_or_none(row.get("content_prompt"))
    if kept is not None and kept.split("|")[0] == (text or ""):
        return str(row["content_prompt"])
    return f"{text}|{text}" if text else ""


def write_promptspeech(
    frame: pd.DataFrame, out: str | Path, audio_root: str | Path | None = None
) -> Path:
    """``Real_training.csv``'s layout (``spk_id`` when speakers are known, ``emotion`` after
    ``energy`` when emotions are, as in ``Synthesized_*``), CRLF. ``item_name`` is the audio file's
    stem, unique under the audio root (``audio_root``, default: see ``export_root``)."""
    out = Path(out)
    whole_files_only(frame, "promptspeech")
    paths = [absolute(p) for p in frame["audio_path"]]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FsclapError(f"cannot export to promptspeech: audio file not found: {missing[0]}")
    index = AudioIndex(export_root(paths, audio_root))
    records = frame.to_dict("records")
    names = []
    for r, p in zip(records, paths):
        stem = Path(p).stem
        if index.by_stem.get(stem) != [Path(p)]:
            raise FsclapError(
                f"cannot export to promptspeech: ids are file stems and "
                f"{len(index.by_stem.get(stem, []))} audio files under {index.root} are named {stem}.*"
            )
        own = text_or_none(r.get("item_name"))
        names.append(own if own and Path(own).stem == stem else stem)
    table = pd.DataFrame({"item_name": names})
    if "speaker_id" in frame.columns and frame["speaker_id"].map(text_or_none).notna().any():
        table["spk_id"] = [text_or_none(r.get("speaker_id")) or "" for r in records]
    table["gender"] = [label_for(r, "gender", FORMAT, VOCABULARY["gender"]) for r in records]
    table["pitch"] = [label_for(r, "pitch", FORMAT, {}) for r in records]
    table["speaking_speed"] = [label_for(r, "speed", FORMAT, {}) for r in records]
    table["energy"] = [label_for(r, "energy", FORMAT, {}) for r in records]
    if "emotion" in frame.columns and frame["emotion"].map(text_or_none).notna().any():
        table["emotion"] = [label_for(r, "emotion", FORMAT, VOCABULARY["emotion"]) for r in records]
    table["style_prompt"] = [str(r["caption"]) for r in records]
    table["content_prompt"] = [_content_prompt(r) for r in records]
    return write_csv(out, table, "\r\n")

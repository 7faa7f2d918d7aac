"""PromptSpeech-style prompt tables (PromptTTS, Guo et al. 2023) and similar style-prompt lists.

PromptSpeech pairs LibriTTS-derived and synthetic utterances with style prompts. Its exact release
layout could not be checked from this machine, so the reader accepts the tabular forms such
prompt sets use: CSV, TSV or JSON Lines with an audio column (``wav_fp``, ``wav_path``,
``audio_path``, ``path``, ``wav``, ``audio``, ``file``) *or* an utterance id column (``item_name``,
``utt_id``, ``id``, ``key``, ``name``), and a prompt column (``style_prompt``, ``prompt``,
``style``, ``description``, ``caption``). An utterance id resolves to the one audio file under
``audio_root`` with that stem (LibriTTS ids such as ``84_121123_000007_000001`` are unique stems).
Attribute columns (``gender``, ``pitch``, ``speed``/``dur``, ``energy``/``volume``, ``emotion``)
are mapped to the manifest's levels when present.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fsclap.manifest import ManifestError
from pipeline.formats.common import AudioIndex, ImportResult, import_result, normalise_level

AUDIO_COLUMNS = ("wav_fp", "wav_path", "audio_path", "path", "wav", "audio", "file")
ID_COLUMNS = ("item_name", "utt_id", "id", "key", "name")
PROMPT_COLUMNS = ("style_prompt", "prompt", "style", "description", "caption")
LEVEL_COLUMNS = {
    "gender": "gender",
    "pitch": "pitch",
    "speed": "speed",
    "dur": "speed",
    "energy": "energy",
    "volume": "energy",
    "emotion": "emotion",
}


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            lines = [
                json.loads(line)
                for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ]
            return pd.DataFrame(lines)
        return pd.read_csv(
            path, dtype=str, keep_default_na=False, sep="\t" if suffix in (".tsv", ".txt") else ","
        )
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ManifestError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def read_promptspeech(path: str | Path, audio_root: str | Path | None = None) -> ImportResult:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    table = _read(path)
    columns = {c.lower(): c for c in table.columns}
    audio_col = next((columns[c] for c in AUDIO_COLUMNS if c in columns), None)
    id_col = next((columns[c] for c in ID_COLUMNS if c in columns), None)
    prompt_col = next((columns[c] for c in PROMPT_COLUMNS if c in columns), None)
    if prompt_col is None or (audio_col is None and id_col is None):
        raise ManifestError(
            f"{path}: need a prompt column ({'/'.join(PROMPT_COLUMNS)}) and an audio "
            f"({'/'.join(AUDIO_COLUMNS)}) or id ({'/'.join(ID_COLUMNS)}) column; have {list(table.columns)}"
        )
    index = AudioIndex(audio_root or path.parent)
    rows, problems = [], []
    for i, r in enumerate(table.to_dict("records")):
        item = str(r.get(id_col) or r.get(audio_col) or f"row{i}")
        audio, why = None, ""
        if audio_col and r.get(audio_col):
            audio = index.resolve_path(str(r[audio_col]), path.parent)
            why = "" if audio else f"audio {r[audio_col]!r} not found"
        if audio is None and id_col and r.get(id_col):
            audio, why = index.by_stem_name(Path(str(r[id_col])).stem)
        caption = str(r.get(prompt_col) or "").strip()
        if audio is None or not caption:
            problems.append((i, item, why or "empty prompt"))
            continue
        row = {
            "clip_id": str(r.get(id_col) or Path(str(audio)).stem),
            "audio_path": str(audio),
            "caption": caption,
            "source_format": "promptspeech",
        }
        for key in ("text", "txt", "transcript"):
            if key in columns:
                row["text"] = r[columns[key]] or None
                break
        for key in ("speaker_id", "spk", "speaker"):
            if key in columns:
                row["speaker_id"] = str(r[columns[key]]) or None
                break
        for column, attribute in LEVEL_COLUMNS.items():
            if column in columns and attribute not in row:
                row[attribute], row[f"{attribute}_label"] = normalise_level(
                    attribute, r[columns[column]]
                )
        rows.append(row)
    return import_result(rows, problems, "id")

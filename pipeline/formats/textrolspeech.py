"""TextrolSpeech / ControlSpeech CSV (the released text layout of TextrolSpeech, ICASSP 2024).

``item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt``: ``item_name`` names the clip
by its path in the original corpora with components joined by ``-`` (e.g.
``CREMA-D-AudioWAV-1060_IWL_FEA_XX`` is ``CREMA-D/AudioWAV/1060_IWL_FEA_XX.wav``); ``dur`` is the
tempo level (``low`` = slow, ``high`` = fast); ``gender`` is ``M``/``F``; emotions include labels
outside SenseVoice's set (``contempt``), imported as ``unknown`` with the original kept in
``emotion_label``. A ``wav_fp`` column, when present, is used instead of the item name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fsclap.io import write_table
from fsclap.manifest import ManifestError, read_table
from pipeline.formats.common import (
    AudioIndex,
    ImportResult,
    import_result,
    normalise_level,
    relative,
)

COLUMNS = ["item_name", "dur", "pitch", "energy", "gender", "emotion", "spk", "txt", "style_prompt"]
LEVEL_COLUMNS = {
    "gender": "gender",
    "pitch": "pitch",
    "dur": "speed",
    "energy": "energy",
    "emotion": "emotion",
}


def read_textrolspeech(path: str | Path, audio_root: str | Path | None = None) -> ImportResult:
    path = Path(path)
    table = read_table(path)
    if "style_prompt" not in table.columns or not ({"item_name", "wav_fp"} & set(table.columns)):
        raise ManifestError(
            f"{path} is not a TextrolSpeech CSV (needs style_prompt and item_name or wav_fp)"
        )
    index = AudioIndex(audio_root or path.parent)
    rows, problems = [], []
    for i, r in enumerate(table.to_dict("records")):
        item = str(r.get("item_name") or r.get("wav_fp") or "")
        audio = index.resolve_path(str(r["wav_fp"]), path.parent) if r.get("wav_fp") else None
        why = "" if audio else (f"audio {r['wav_fp']!r} not found" if r.get("wav_fp") else "")
        if audio is None and r.get("item_name"):
            audio, why = index.by_item_name(item)
        caption = str(r.get("style_prompt") or "").strip()
        if audio is None or not caption:
            problems.append((i, item, why or "empty style_prompt"))
            continue
        row = {
            "clip_id": item or f"row{i:07d}",
            "audio_path": str(audio),
            "caption": caption,
            "text": r.get("txt") or None,
            "speaker_id": r.get("spk") or None,
            "source_format": "textrolspeech",
        }
        for column, attribute in LEVEL_COLUMNS.items():
            if column in r:
                row[attribute], row[f"{attribute}_label"] = normalise_level(attribute, r[column])
        rows.append(row)
    return import_result(rows, problems, "item_name")


def write_textrolspeech(frame: pd.DataFrame, out: str | Path) -> Path:
    """The TextrolSpeech CSV columns plus ``wav_fp`` (relative to the CSV) so it reads back exactly."""
    out = Path(out)
    levels = {
        "dur": frame.get("speed"),
        "pitch": frame.get("pitch"),
        "energy": frame.get("energy"),
        "gender": frame.get("gender"),
        "emotion": frame.get("emotion"),
    }
    table = pd.DataFrame(
        {
            "item_name": frame["clip_id"],
            "dur": levels["dur"].map({"slow": "low", "normal": "normal", "fast": "high"})
            if levels["dur"] is not None
            else "",
            "pitch": levels["pitch"] if levels["pitch"] is not None else "",
            "energy": levels["energy"] if levels["energy"] is not None else "",
            "gender": levels["gender"].map({"male": "M", "female": "F"})
            if levels["gender"] is not None
            else "",
            "emotion": levels["emotion"] if levels["emotion"] is not None else "",
            "spk": frame.get("speaker_id", ""),
            "txt": frame.get("text", ""),
            "style_prompt": frame["caption"],
            "wav_fp": [relative(p, out.parent) for p in frame["audio_path"]],
        }
    ).fillna("")
    return write_table(out, table)

"""TextrolSpeech / ControlSpeech CSV (the released text layout of TextrolSpeech, ICASSP 2024).

``item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt``, UTF-8, LF line ends (as in
ControlSpeech's ``VccmDataset/controlspeech_test*.csv``). ``item_name`` names the clip: for the
emotional corpora its path in the original corpus with components joined by ``-`` (e.g.
``CREMA-D-AudioWAV-1060_IWL_FEA_XX`` is ``CREMA-D/AudioWAV/1060_IWL_FEA_XX.wav``), for LibriTTS
the utterance id (the file stem). ``dur`` is the tempo level (``low`` = slow, ``high`` = fast);
``gender`` is ``M``/``F``; ``emotion`` uses labels outside SenseVoice's set (``fear``,
``contempt``, and the text ``nan`` on LibriTTS rows), imported as levels with the original kept in
``<attribute>_label`` and written back as they were.

An item resolves to the one audio file under the audio root it names exactly: its whole
dash-joined path (leading components may name folders above the root) or its file stem
(ControlSpeech's own loader maps item names to files by stem). Nothing else: a missing file is a
problem row, never a file that merely shares a name suffix.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fsclap.errors import FsclapError
from fsclap.manifest import ManifestError
from pipeline.formats.common import (
    AudioIndex,
    ImportResult,
    absolute,
    export_root,
    import_result,
    label_for,
    level_columns,
    read_csv,
    text_or_none,
    whole_files_only,
    write_csv,
)

FORMAT = "textrolspeech"
COLUMNS = ["item_name", "dur", "pitch", "energy", "gender", "emotion", "spk", "txt", "style_prompt"]
LEVEL_COLUMNS = {
    "gender": "gender",
    "pitch": "pitch",
    "dur": "speed",
    "energy": "energy",
    "emotion": "emotion",
}
# fsclap's levels in TextrolSpeech's words (levels not listed are spelled alike); labels kept from
# a TextrolSpeech import are written as they were.
VOCABULARY = {
    "gender": {"male": "M", "female": "F"},
    "speed": {"slow": "low", "normal": "normal", "fast": "high"},
    "emotion": {"fearful": "fear", "unknown": "nan"},
}


def read_textrolspeech(
    path: str | Path, audio_root: str | Path | None = None, encoding: str | None = None
) -> ImportResult:
    """Rows whose item resolves to audio under ``audio_root`` (default: the CSV's folder). A
    ``wav_fp`` column (fsclap's exports before the 9-column layout) is tried first, against the
    CSV's folder then the root."""
    path = Path(path)
    table = read_csv(path, encoding, sep=",")
    if "style_prompt" not in table.columns or not ({"item_name", "wav_fp"} & set(table.columns)):
        raise ManifestError(
            f"{path} is not a TextrolSpeech CSV (needs style_prompt and item_name; have "
            f"{', '.join(map(str, table.columns))})"
        )
    index = AudioIndex(audio_root or path.parent)
    rows, problems = [], []
    for i, r in enumerate(table.to_dict("records")):
        item, wav = r.get("item_name") or "", r.get("wav_fp") or ""
        audio, why = None, ""
        if wav:
            audio = index.resolve_path(wav, Path(absolute(path.parent)))
            why = "" if audio else f"audio {wav!r} not found"
        if audio is None and item:
            audio, why = index.by_item_name(item)
        if not r["style_prompt"].strip():
            problems.append((i, item or wav, "empty style_prompt"))
            continue
        if audio is None:
            problems.append((i, item or wav, why or "no item_name"))
            continue
        rows.append(
            {
                "_row": i,
                "clip_id": item or f"row{i:07d}",
                "item_name": item,
                "audio_path": str(audio),
                "caption": r["style_prompt"],
                "text": text_or_none(r.get("txt")),
                "speaker_id": text_or_none(r.get("spk")),
                **level_columns(r, LEVEL_COLUMNS),
                "source_format": FORMAT,
            }
        )
    return import_result(rows, problems, "item_name")


def item_name_for(row: dict, audio: str, index: AudioIndex) -> str:
    """The row's own item name if it names its file under the root, else the clip id or the file
    stem if one does (what ControlSpeech's loader looks up), else the dash-joined path."""
    target = [Path(audio)]
    for name in (row.get("item_name"), row.get("clip_id"), Path(audio).stem):
        name = text_or_none(name)
        if name and index.item_matches(name) == target:
            return name
    key = "-".join(Path(audio).relative_to(index.root).with_suffix("").parts)
    if index.item_matches(key) != target:
        raise FsclapError(f"no item name names only {audio} under {index.root}")
    return key


def write_textrolspeech(
    frame: pd.DataFrame, out: str | Path, audio_root: str | Path | None = None
) -> Path:
    """The 9 TextrolSpeech columns in its own words; ``item_name`` resolves against the audio root
    (``audio_root``, default: see ``export_root``), which the import then takes as ``--audio-root``."""
    out = Path(out)
    whole_files_only(frame, "textrolspeech")
    paths = [absolute(p) for p in frame["audio_path"]]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FsclapError(f"cannot export to textrolspeech: audio file not found: {missing[0]}")
    index = AudioIndex(export_root(paths, audio_root))
    records = frame.to_dict("records")
    table = pd.DataFrame(
        {
            "item_name": [item_name_for(r, p, index) for r, p in zip(records, paths)],
            "dur": [label_for(r, "speed", FORMAT, VOCABULARY["speed"]) for r in records],
            "pitch": [label_for(r, "pitch", FORMAT, {}) for r in records],
            "energy": [label_for(r, "energy", FORMAT, {}) for r in records],
            "gender": [label_for(r, "gender", FORMAT, VOCABULARY["gender"]) for r in records],
            "emotion": [label_for(r, "emotion", FORMAT, VOCABULARY["emotion"]) for r in records],
            "spk": [text_or_none(r.get("speaker_id")) or "" for r in records],
            "txt": [text_or_none(r.get("text")) or "" for r in records],
            "style_prompt": [str(r["caption"]) for r in records],
        },
        columns=COLUMNS,
    )
    return write_csv(out, table, "\n")

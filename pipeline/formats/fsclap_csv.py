"""The FS-CLAP CSV: ``wav_fp,style_prompt`` (the TextrolSpeech-derived format the FS-CLAP code
reads), plus the clip manifest's optional columns when known. Paths are written relative to the CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fsclap.io import write_table
from fsclap.manifest import OPTIONAL_COLUMNS, ClipManifest
from pipeline.formats.common import ImportResult, relative


def write_fsclap_csv(frame: pd.DataFrame, out: str | Path) -> Path:
    out = Path(out)
    table = pd.DataFrame(
        {
            "wav_fp": [relative(p, out.parent) for p in frame["audio_path"]],
            "style_prompt": frame["caption"].astype(str),
        }
    )
    for col in OPTIONAL_COLUMNS:
        if col in frame.columns:
            table[col] = frame[col].to_numpy()
    for extra in ("caption_en", "caption_zh", "text"):
        if extra in frame.columns:
            table[extra] = frame[extra].to_numpy()
    return write_table(out, table)


def read_fsclap_csv(path: str | Path) -> ImportResult:
    return ImportResult(ClipManifest.read(path, validate_levels=False).frame)

"""The FS-CLAP CSV: ``wav_fp,style_prompt`` (what the FS-CLAP authors' ``src/dataset.py`` reads),
plus the clip manifest's optional columns when known.

Their loader reads it with ``pd.read_csv`` and keeps the rows where ``os.path.exists(wav_fp)``,
so a relative ``wav_fp`` means relative to the working directory of whoever trains. The writer
therefore writes absolute paths (``relative_paths=True``: relative to the CSV's folder, for a
folder shipped whole and trained from inside it); the reader resolves relative paths like the
authors do, against the working directory, then against ``audio_root`` when given.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fsclap.io import write_table
from fsclap.manifest import COLUMN_ALIASES, OPTIONAL_COLUMNS, ManifestError
from pipeline.formats.common import (
    ImportResult,
    absolute,
    problems_frame,
    read_csv,
    relative,
    whole_files_only,
)

EXTRA_COLUMNS = ("caption_en", "caption_zh", "text")


def write_fsclap_csv(frame: pd.DataFrame, out: str | Path, relative_paths: bool = False) -> Path:
    out = Path(out)
    whole_files_only(frame, "fsclap-csv")  # the authors' loader reads whole files
    folder = Path(absolute(out.parent))
    paths = [absolute(p) for p in frame["audio_path"]]
    table = pd.DataFrame(
        {
            "wav_fp": [relative(p, folder) for p in paths] if relative_paths else paths,
            "style_prompt": frame["caption"].astype(str).to_numpy(),
        }
    )
    for col in (*OPTIONAL_COLUMNS, *EXTRA_COLUMNS):
        if col in frame.columns and col not in ("start_s", "end_s"):
            table[col] = frame[col].to_numpy()
    return write_table(out, table)


def read_fsclap_csv(
    path: str | Path, audio_root: str | Path | None = None, encoding: str | None = None
) -> ImportResult:
    """Rows whose audio exists: absolute paths as written, relative ones against the working
    directory (the authors' rule), then ``audio_root``."""
    path = Path(path)
    table = read_csv(path, encoding, sep=",").rename(columns=COLUMN_ALIASES)
    missing = [c for c in ("audio_path", "caption") if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path} is not an FS-CLAP CSV (needs wav_fp and style_prompt; have "
            f"{', '.join(map(str, table.columns))})"
        )
    bases = [Path.cwd(), *([Path(absolute(audio_root))] if audio_root else [])]
    keep, audio, problems = [], [], []
    for i, (wav, caption) in enumerate(zip(table["audio_path"], table["caption"])):
        item = table["clip_id"].iloc[i] if "clip_id" in table.columns else wav
        rel = os.path.expanduser(wav)
        found = next((absolute(b / rel) for b in bases if rel and (b / rel).is_file()), None)
        if not caption.strip():
            problems.append((i, item, "empty style_prompt"))
        elif found is None:
            where = " or ".join(str(b) for b in bases)
            problems.append((i, item, f"audio {wav!r} not found (relative paths: against {where})"))
        else:
            keep.append(i)
            audio.append(found)
    frame = table.iloc[keep].reset_index(drop=True)
    frame["audio_path"] = audio
    if "clip_id" in frame.columns:
        dup = frame["clip_id"].duplicated()
        problems += [(-1, c, "repeated clip_id; first kept") for c in frame.loc[dup, "clip_id"]]
        frame = frame[~dup].reset_index(drop=True)
    for col in ("start_s", "end_s"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col].replace("", None), errors="coerce")
    return ImportResult(frame, problems_frame(problems))

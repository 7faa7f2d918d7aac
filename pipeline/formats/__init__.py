"""Import and export of clip manifests in other datasets' layouts.

Readers return a canonical clip-manifest frame (``audio_path`` absolute, ``caption``, optional
``clip_id``/``text``/``speaker_id``/attribute columns) plus a ``problems`` frame listing rows that
could not be imported and why; they never fail a whole file for one bad row.

| format | read | write |
|---|---|---|
| ``textrolspeech`` — TextrolSpeech / ControlSpeech CSV (``item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt``) | yes | yes |
| ``promptspeech`` — PromptSpeech-style prompt tables (CSV/TSV/JSONL: id or path + style prompt) | yes | — |
| ``fsclap-csv`` — the FS-CLAP CSV (``wav_fp,style_prompt`` + optional columns) | yes | yes |
| ``hf-parquet`` — HuggingFace ``datasets`` Parquet layout (``data/{split}-00000-of-00001.parquet`` + card) | yes | yes |
| ``lhotse`` — lhotse ``CutSet`` (``cuts.jsonl.gz``) | yes | yes |
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fsclap.errors import FsclapError
from pipeline.formats.common import ImportResult
from pipeline.formats.fsclap_csv import read_fsclap_csv, write_fsclap_csv
from pipeline.formats.hf import read_hf_parquet, write_hf_parquet
from pipeline.formats.lhotse_cuts import read_lhotse_cuts, write_lhotse_cuts
from pipeline.formats.promptspeech import read_promptspeech
from pipeline.formats.textrolspeech import read_textrolspeech, write_textrolspeech

READ_FORMATS = ("textrolspeech", "promptspeech", "fsclap-csv", "hf-parquet", "lhotse")
WRITE_FORMATS = ("textrolspeech", "fsclap-csv", "hf-parquet", "lhotse")


def import_manifest(
    path: str | Path, fmt: str, audio_root: str | Path | None = None
) -> ImportResult:
    """Read ``path`` in format ``fmt`` as a canonical clip-manifest frame."""
    if fmt == "textrolspeech":
        return read_textrolspeech(path, audio_root)
    if fmt == "promptspeech":
        return read_promptspeech(path, audio_root)
    if fmt == "fsclap-csv":
        return read_fsclap_csv(path)
    if fmt == "hf-parquet":
        return read_hf_parquet(path)
    if fmt == "lhotse":
        return read_lhotse_cuts(path)
    raise FsclapError(f"unknown import format {fmt!r} (choose from {', '.join(READ_FORMATS)})")


def export_manifest(frame: pd.DataFrame, out: str | Path, fmt: str, **options) -> Path:
    """Write a canonical clip-manifest frame (absolute ``audio_path``) in format ``fmt``."""
    if fmt == "textrolspeech":
        return write_textrolspeech(frame, out)
    if fmt == "fsclap-csv":
        return write_fsclap_csv(frame, out)
    if fmt == "hf-parquet":
        return write_hf_parquet(frame, out, **options)
    if fmt == "lhotse":
        return write_lhotse_cuts(frame, out)
    raise FsclapError(f"unknown export format {fmt!r} (choose from {', '.join(WRITE_FORMATS)})")


__all__ = ["READ_FORMATS", "WRITE_FORMATS", "ImportResult", "export_manifest", "import_manifest"]

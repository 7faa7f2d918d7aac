"""Import and export of clip manifests in other datasets' layouts.

Readers return a canonical clip-manifest frame (``audio_path`` absolute, ``caption`` exactly as
written, optional ``clip_id``/``text``/``speaker_id``/attribute columns, the source's own words in
``<attribute>_label``) plus a ``problems`` frame listing rows that could not be imported and why;
they never fail a whole file for one bad row. Writers use each format's own vocabulary, columns,
encoding and line ends, so a file read and written again is the file read.

| format | read | write |
|---|---|---|
| ``textrolspeech`` — TextrolSpeech / ControlSpeech CSV (``item_name,dur,pitch,energy,gender,emotion,spk,txt,style_prompt``) | yes | yes |
| ``promptspeech`` — PromptSpeech CSVs (``item_name,spk_id,gender,pitch,speaking_speed,energy,style_prompt,content_prompt``) and similar prompt tables (CSV/TSV/JSONL) | yes | yes |
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
from pipeline.formats.promptspeech import read_promptspeech, write_promptspeech
from pipeline.formats.textrolspeech import read_textrolspeech, write_textrolspeech

READ_FORMATS = ("textrolspeech", "promptspeech", "fsclap-csv", "hf-parquet", "lhotse")
WRITE_FORMATS = ("textrolspeech", "promptspeech", "fsclap-csv", "hf-parquet", "lhotse")
# Which formats take which options: an option given to a format that ignores it is refused.
CSV_FORMATS = ("textrolspeech", "promptspeech", "fsclap-csv")
AUDIO_ROOT_READ = ("textrolspeech", "promptspeech", "fsclap-csv", "lhotse")
AUDIO_ROOT_WRITE = ("textrolspeech", "promptspeech")


def import_manifest(
    path: str | Path,
    fmt: str,
    audio_root: str | Path | None = None,
    encoding: str | None = None,
    audio_dir: str | Path | None = None,
) -> ImportResult:
    """Read ``path`` in format ``fmt`` as a canonical clip-manifest frame. ``audio_root``: where
    the format's names and relative paths resolve; ``encoding``: the CSV readers' text encoding
    (default: UTF-8, UTF-8 with BOM, then GBK); ``audio_dir``: where audio embedded in the input
    (hf-parquet) is written."""
    if fmt not in READ_FORMATS:
        raise FsclapError(f"unknown import format {fmt!r} (choose from {', '.join(READ_FORMATS)})")
    if audio_root is not None and fmt not in AUDIO_ROOT_READ:
        raise FsclapError(f"--audio-root does not apply to {fmt} imports")
    if encoding is not None and fmt not in CSV_FORMATS:
        raise FsclapError(
            f"--encoding applies to CSV formats ({', '.join(CSV_FORMATS)}), not {fmt}"
        )
    if fmt == "textrolspeech":
        return read_textrolspeech(path, audio_root, encoding)
    if fmt == "promptspeech":
        return read_promptspeech(path, audio_root, encoding)
    if fmt == "fsclap-csv":
        return read_fsclap_csv(path, audio_root, encoding)
    if fmt == "hf-parquet":
        return read_hf_parquet(path, audio_dir)
    return read_lhotse_cuts(path, audio_root)


def export_manifest(
    frame: pd.DataFrame,
    out: str | Path,
    fmt: str,
    audio_root: str | Path | None = None,
    relative_paths: bool = False,
    **options,
) -> Path:
    """Write a canonical clip-manifest frame in format ``fmt``. ``audio_root``: the folder
    textrolspeech/promptspeech item names resolve against; ``relative_paths``: fsclap-csv paths
    relative to the CSV instead of absolute; ``options``: hf-parquet's ``embed_audio``/``name``."""
    if fmt not in WRITE_FORMATS:
        raise FsclapError(f"unknown export format {fmt!r} (choose from {', '.join(WRITE_FORMATS)})")
    if audio_root is not None and fmt not in AUDIO_ROOT_WRITE:
        raise FsclapError(f"--audio-root applies to {' and '.join(AUDIO_ROOT_WRITE)} exports")
    if relative_paths and fmt != "fsclap-csv":
        raise FsclapError("--relative-paths applies to fsclap-csv exports")
    if fmt == "textrolspeech":
        return write_textrolspeech(frame, out, audio_root)
    if fmt == "promptspeech":
        return write_promptspeech(frame, out, audio_root)
    if fmt == "fsclap-csv":
        return write_fsclap_csv(frame, out, relative_paths)
    if fmt == "hf-parquet":
        return write_hf_parquet(frame, out, **options)
    return write_lhotse_cuts(frame, out)


__all__ = ["READ_FORMATS", "WRITE_FORMATS", "ImportResult", "export_manifest", "import_manifest"]

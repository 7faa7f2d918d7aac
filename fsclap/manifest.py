"""The clip manifest contract (docs/design.md): what training, evaluation and indexing read.

Parquet or CSV with at least ``audio_path`` and ``caption`` (aliases ``wav_fp`` and
``style_prompt``, the TextrolSpeech/FS-CLAP CSV format). Optional columns are listed in
``OPTIONAL_COLUMNS``; attribute columns hold the levels in ``ATTRIBUTE_LEVELS``.
Relative audio paths resolve against the manifest's folder.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.errors import FsclapError
from fsclap.io import write_table

COLUMN_ALIASES = {"wav_fp": "audio_path", "style_prompt": "caption"}
REQUIRED_COLUMNS = ("audio_path", "caption")
OPTIONAL_COLUMNS = (
    "clip_id",
    "start_s",
    "end_s",
    "speaker_id",
    "gender",
    "pitch",
    "speed",
    "energy",
    "emotion",
    "split",
)
# SenseVoice's emotion tags in lower case, plus "unknown" when emotion was not measured.
EMOTIONS = ("happy", "sad", "angry", "neutral", "fearful", "disgusted", "surprised", "unknown")
ATTRIBUTE_LEVELS: dict[str, tuple[str, ...]] = {
    "gender": ("female", "male"),
    "pitch": ("low", "normal", "high"),
    "speed": ("slow", "normal", "fast"),
    "energy": ("low", "normal", "high"),
    "emotion": EMOTIONS,
}
SPLITS = ("train", "val", "test")


class ManifestError(FsclapError):
    """The manifest is missing, unreadable or breaks the contract."""


@dataclass(frozen=True)
class Clip:
    """One row of a clip manifest, with the audio path already resolved."""

    clip_id: str
    audio_path: Path
    caption: str
    start_s: float | None = None
    end_s: float | None = None
    speaker_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    split: str | None = None


def normalise_caption(text: str) -> str:
    """The evaluation's notion of "identical caption": case, spacing and final punctuation ignored."""
    return " ".join(str(text).lower().split()).rstrip(" .!?。！？")


def read_table(path: str | Path, keep_bad_bytes: bool = False) -> pd.DataFrame:
    """A table from CSV/TSV (UTF-8, every cell a string) or Parquet, or a one-line ManifestError.

    ``keep_bad_bytes``: undecodable bytes in a CSV stay as surrogates instead of failing the file
    (a clip list to caption, where one bad transcript must not stop the rest)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv") and keep_bad_bytes:
            # the csv module keeps surrogates; pandas' string storage cannot hold them
            text = path.read_bytes().decode("utf-8", "surrogateescape")
            header, *rows = [
                r
                for r in csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
                if r
            ]
            return pd.DataFrame(
                [r + [""] * (len(header) - len(r)) for r in rows], columns=header, dtype=object
            )
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
                sep="\t" if suffix == ".tsv" else ",",
            )
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types for malformed files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ManifestError(f"cannot read manifest {path}: {first}") from None


def clip_rows(
    frame: pd.DataFrame,
    base_dir: Path | None = None,
    source: Path | None = None,
    required: tuple[str, ...] = REQUIRED_COLUMNS,
) -> pd.DataFrame:
    """The rules every clip table shares: canonical column names, the required columns present, at
    least one row, audio paths absolute (relative ones against ``base_dir``), unique ``clip_id``s
    (numbered when absent), numeric ``start_s``/``end_s``."""
    frame = frame.rename(columns=COLUMN_ALIASES).copy()
    where = f" in {source}" if source else ""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ManifestError(
            f"manifest{where} lacks column(s) {', '.join(missing)} (audio: audio_path or wav_fp; "
            "caption: caption or style_prompt)"
        )
    if frame.empty:
        raise ManifestError(f"manifest{where} has no rows")
    frame["audio_path"] = [_resolve(p, base_dir) for p in frame["audio_path"]]
    if "clip_id" not in frame.columns:
        frame["clip_id"] = [f"clip{i:07d}" for i in range(len(frame))]
    frame["clip_id"] = frame["clip_id"].astype(str)
    dup = frame["clip_id"][frame["clip_id"].duplicated()].unique()
    if len(dup):
        raise ManifestError(f"manifest{where} repeats clip_id(s): {', '.join(map(str, dup[:5]))}")
    for col in ("start_s", "end_s"):
        if col in frame.columns:
            frame[col] = pd.to_numeric(frame[col].replace("", None), errors="coerce")
    _check_times(frame, where)
    return frame.reset_index(drop=True)


def _check_times(frame: pd.DataFrame, where: str) -> None:
    """A clip's start and end, when given, are finite seconds with 0 <= start < end."""
    start = frame["start_s"] if "start_s" in frame.columns else pd.Series(np.nan, frame.index)
    end = frame["end_s"] if "end_s" in frame.columns else pd.Series(np.nan, frame.index)
    problems = (
        (start.notna() & (~np.isfinite(start.fillna(0.0)) | (start < 0)), "start_s not >= 0"),
        (end.notna() & (~np.isfinite(end.fillna(1.0)) | (end <= 0)), "end_s not > 0"),
        (start.notna() & end.notna() & (end <= start), "end_s not after start_s"),
    )
    for bad, rule in problems:
        if bad.any():
            rows = frame.loc[bad, "clip_id"].astype(str).head(3).tolist()
            raise ManifestError(f"manifest{where}: {rule} for clip(s) {', '.join(rows)}")


class ClipManifest:
    """A validated clip manifest. ``frame`` uses canonical column names and absolute audio paths."""

    def __init__(self, frame: pd.DataFrame, source: Path | None = None):
        self.frame = frame
        self.source = source

    @classmethod
    def read(cls, path: str | Path, validate_levels: bool = True) -> ClipManifest:
        path = Path(path)
        return cls.from_frame(
            read_table(path),
            base_dir=path.absolute().parent,  # paths stay valid from any working directory
            source=path,
            validate_levels=validate_levels,
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        base_dir: Path | None = None,
        source: Path | None = None,
        validate_levels: bool = True,
    ) -> ClipManifest:
        frame = clip_rows(frame, base_dir, source)
        frame["caption"] = frame["caption"].fillna("").astype(str)
        where = f" in {source}" if source else ""
        if validate_levels:
            for col, levels in ATTRIBUTE_LEVELS.items():
                if col not in frame.columns:
                    continue
                values = frame[col].fillna("").astype(str).str.strip().str.lower()
                bad = sorted(set(values[(values != "") & ~values.isin(levels)]))
                if bad:
                    raise ManifestError(
                        f"manifest{where}: column {col} has values {bad[:5]} outside {list(levels)}"
                    )
                frame[col] = values
        return cls(frame.reset_index(drop=True), source)

    def __len__(self) -> int:
        return len(self.frame)

    def __iter__(self) -> Iterator[Clip]:
        attr_cols = [c for c in ATTRIBUTE_LEVELS if c in self.frame.columns]
        for row in self.frame.itertuples(index=False):
            r = row._asdict()
            yield Clip(
                clip_id=r["clip_id"],
                audio_path=Path(r["audio_path"]),
                caption=r["caption"],
                start_s=_float_or_none(r.get("start_s")),
                end_s=_float_or_none(r.get("end_s")),
                speaker_id=_str_or_none(r.get("speaker_id")),
                attributes={c: r[c] for c in attr_cols if _str_or_none(r[c])},
                split=_str_or_none(r.get("split")),
            )

    def split(self, name: str) -> ClipManifest:
        if "split" not in self.frame.columns:
            raise ManifestError(
                f"manifest{' ' + str(self.source) if self.source else ''} has no split column"
            )
        return ClipManifest(
            self.frame[self.frame["split"] == name].reset_index(drop=True), self.source
        )

    def problems(self) -> pd.DataFrame:
        """Rows whose audio file is missing or whose caption is empty: ``clip_id, audio_path, problem``."""
        rows = []
        for row in self.frame.itertuples(index=False):
            if not str(row.caption).strip():
                rows.append((row.clip_id, row.audio_path, "empty caption"))
            elif not Path(row.audio_path).is_file():
                rows.append((row.clip_id, row.audio_path, "audio file not found"))
        return pd.DataFrame(rows, columns=["clip_id", "audio_path", "problem"])

    def write(self, path: str | Path) -> Path:
        return write_table(path, self.frame)


def _resolve(p, base_dir: Path | None) -> str:
    path = Path(str(p)).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return str(path)


def _float_or_none(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _str_or_none(v):
    if v is None:
        return None
    s = str(v)
    return None if s in ("", "nan", "None") else s

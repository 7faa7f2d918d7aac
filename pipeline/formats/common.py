"""Shared pieces of the format readers and writers: level synonyms, text decoding, audio lookup,
path rules, the import result."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fsclap.errors import FsclapError
from fsclap.io import atomic_path
from fsclap.manifest import ATTRIBUTE_LEVELS, ManifestError

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
# Tried in this order when no encoding is given: PromptSpeech's Synthesized_test.csv is GBK.
DETECTED_ENCODINGS = ("utf-8-sig", "gbk")

# Other datasets' spellings of the manifest's attribute levels.
SYNONYMS: dict[str, dict[str, str]] = {
    "gender": {
        "m": "male",
        "f": "female",
        "man": "male",
        "woman": "female",
        "men": "male",
        "women": "female",
    },
    "pitch": {"medium": "normal", "mid": "normal", "middle": "normal"},
    "speed": {
        "low": "slow",
        "high": "fast",
        "medium": "normal",
        "mid": "normal",
    },  # TextrolSpeech 'dur'
    "energy": {"medium": "normal", "mid": "normal", "loud": "high", "quiet": "low"},
    "emotion": {
        "fear": "fearful",
        "disgust": "disgusted",
        "surprise": "surprised",
        "happiness": "happy",
        "anger": "angry",
        "sadness": "sad",
        "neutrality": "neutral",
        "calm": "neutral",
        "cheerful": "happy",  # PromptSpeech's synthesized styles (Azure TTS): general is the
        "general": "neutral",  # default style; whisper and shout are no emotion
    },
}


@dataclass
class ImportResult:
    """Imported rows (canonical columns) and the rows left out with their reason."""

    frame: pd.DataFrame
    problems: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["row", "item", "problem"])
    )

    def summary(self) -> str:
        text = f"imported {len(self.frame)} clips"
        if len(self.problems):
            text += f"; {len(self.problems)} row(s) left out (first: {self.problems.iloc[0]['problem']})"
        return text


def normalise_level(attribute: str, value) -> tuple[str | None, str]:
    """``(level, original)``: the manifest's level for a dataset's value. A value with no level
    (TextrolSpeech's ``contempt`` and ``nan``) is emotion ``unknown``, or no level for the other
    attributes (left empty, as unmeasured); the original spelling is kept for ``<attr>_label``."""
    if value is None or (isinstance(value, float) and value != value):
        original = ""
    else:
        original = str(value)
    level = original.strip().lower()
    level = SYNONYMS.get(attribute, {}).get(level, level)
    if level in ATTRIBUTE_LEVELS[attribute]:
        return level, original
    return ("unknown" if "unknown" in ATTRIBUTE_LEVELS[attribute] else None), original


def level_columns(values: dict, columns: dict[str, str]) -> dict:
    """``<attribute>`` and ``<attribute>_label`` for each present source column (source -> attribute)."""
    out: dict = {}
    for column, attribute in columns.items():
        if column in values and attribute not in out:
            out[attribute], out[f"{attribute}_label"] = normalise_level(attribute, values[column])
    return out


def _known(level: str | None) -> str | None:
    return None if level in (None, "unknown") else level


def label_for(row: dict, attribute: str, fmt: str, vocabulary: dict[str, str]) -> str:
    """A row's level in format ``fmt``'s words: the original label kept when the row was imported
    from ``fmt`` (while it still means the row's level: an edited level wins), else
    ``vocabulary[level]`` (default: the level itself; ``vocabulary["unknown"]`` or "" for none)."""
    level = text_or_none(row.get(attribute))
    label = text_or_none(row.get(f"{attribute}_label"))
    if (
        label is not None
        and row.get("source_format") == fmt
        and _known(normalise_level(attribute, label)[0]) == _known(level)
    ):
        return label
    if _known(level) is None:
        return vocabulary.get("unknown", "")
    return vocabulary.get(level, level)


def text_or_none(value) -> str | None:
    """A cell as text; ``None`` for empty and missing cells (pandas' NaN and None included)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    text = str(value)
    return text if text.strip() else None


def decode_text(path: Path, encoding: str | None = None) -> str:
    """The file's text in ``encoding``, or detected as UTF-8 (BOM or not), then GBK."""
    data = path.read_bytes()
    if encoding and encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"  # a BOM is no part of the first column's name
    for name in [encoding] if encoding else DETECTED_ENCODINGS:
        try:
            return data.decode(name)
        except LookupError:
            raise ManifestError(f"unknown encoding {name!r}") from None
        except UnicodeDecodeError as exc:
            if encoding:
                raise ManifestError(
                    f"cannot decode {path} as {name}: byte 0x{data[exc.start]:02x} at offset "
                    f"{exc.start}"
                ) from None
    raise ManifestError(f"cannot decode {path} as UTF-8 or GBK; give its encoding (--encoding)")


def read_csv(path: str | Path, encoding: str | None = None, sep: str | None = None) -> pd.DataFrame:
    """A CSV/TSV as text cells exactly as written (``nan`` stays the text ``nan``, spaces kept)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    text = decode_text(path, encoding)
    if sep is None:
        sep = "\t" if path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=sep)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ManifestError(f"cannot read {path}: {str(exc).strip().splitlines()[0]}") from None


def write_csv(path: str | Path, table: pd.DataFrame, line_end: str = "\n") -> Path:
    """A UTF-8 CSV with the given line ending (TextrolSpeech LF, PromptSpeech CRLF), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, encoding="utf-8", lineterminator=line_end)
    return path


def absolute(path: str | Path) -> str:
    """An absolute, normalised path (symlinks kept: the user's spelling of the tree)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(path))))


def whole_files_only(frame: pd.DataFrame, fmt: str) -> None:
    """Refuse clips that are segments of a longer file: ``fmt`` names whole audio files only."""
    for col in ("start_s", "end_s"):
        if col in frame.columns and frame[col].map(text_or_none).notna().any():
            raise FsclapError(
                f"cannot export to {fmt}: some clips are segments ({col} set) and {fmt} names whole "
                "audio files; export lhotse, or cut the clips to files first"
            )


def export_root(paths: list[str], audio_root: str | Path | None) -> Path:
    """The folder exported item names resolve against: ``audio_root``, else the deepest folder
    holding every file (where item names kept from an import still name their files)."""
    parents = [os.path.dirname(p) for p in paths]
    root = Path(absolute(audio_root) if audio_root is not None else os.path.commonpath(parents))
    outside = [p for p in paths if not p.startswith(str(root) + os.sep)]
    if outside:
        raise FsclapError(f"audio file {outside[0]} is not under the audio root {root}")
    return root


class AudioIndex:
    """Finds audio files under a root by relative path, by file stem, or by TextrolSpeech's
    ``item_name`` (the clip's path in the original corpora, components joined by ``-``)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(absolute(root)) if root else None
        self.by_key: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        if self.root is None or not self.root.is_dir():
            return
        for folder, _, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                if path.suffix.lower() not in AUDIO_SUFFIXES:
                    continue
                key = "-".join(path.relative_to(self.root).with_suffix("").parts)
                self.by_key.setdefault(key, []).append(path)
                self.by_stem.setdefault(path.stem, []).append(path)

    def resolve_path(self, value: str, base: Path | None) -> Path | None:
        """An existing file for a path cell: absolute as is, else against ``base``, then the root."""
        path = Path(value).expanduser()
        bases = [] if path.is_absolute() else [b for b in (base, self.root) if b is not None]
        for candidate in [path] if path.is_absolute() else [b / path for b in bases]:
            if candidate.is_file():
                return Path(absolute(candidate))
        return None

    def item_matches(self, item: str) -> list[Path]:
        """Files named exactly by ``item``: its whole dash-joined path under the root (leading
        components may name the folders above the root), or its file stem (ControlSpeech's loader
        maps item names to files by stem: LibriTTS ids, flattened emotional corpora)."""
        hits = list(self.by_key.get(item, []))
        above = self.root.parts[1:] if self.root else ()
        for k in range(1, len(above) + 1):
            prefix = "-".join(above[-k:]) + "-"
            if item.startswith(prefix):
                hits += self.by_key.get(item[len(prefix) :], [])
        hits += self.by_stem.get(item, [])
        return list(dict.fromkeys(hits))

    def by_item_name(self, item: str) -> tuple[Path | None, str]:
        """The one file named exactly by ``item``; ``(None, why)`` when none or several are."""
        hits = self.item_matches(item)
        if len(hits) == 1:
            return hits[0], ""
        return None, (
            f"no audio file for item {item!r} under {self.root}"
            if not hits
            else f"item {item!r} matches {len(hits)} audio files"
        )

    def by_stem_name(self, stem: str) -> tuple[Path | None, str]:
        hits = self.by_stem.get(stem, [])
        if len(hits) == 1:
            return hits[0], ""
        return None, (
            f"no audio file named {stem}.* under {self.root}"
            if not hits
            else f"{len(hits)} audio files named {stem}.*"
        )


def relative(path: str | Path, folder: Path) -> str:
    try:
        return os.path.relpath(path, folder)
    except ValueError:
        return str(path)


def problems_frame(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["row", "item", "problem"])


def import_result(
    rows: list[dict], problems: list[tuple[int, str, str]], id_name: str
) -> ImportResult:
    """The imported rows with unique clip ids. A row repeating an earlier one (same id, audio,
    caption, text) is left out as a problem; a repeated id with another caption (one utterance,
    several prompts) is kept as ``<id>#2``, ``<id>#3``… (readers keep the id itself in ``item_name``)."""
    kept: list[dict] = []
    seen: dict[str, list[dict]] = {}
    for row in rows:
        item = row["clip_id"]
        same = seen.setdefault(item, [])
        key = (row["audio_path"], row["caption"], row.get("text"))
        if any((r["audio_path"], r["caption"], r.get("text")) == key for r in same):
            problems = problems + [(row.pop("_row", -1), item, f"repeated row (same {id_name})")]
            continue
        if same:
            row["clip_id"] = f"{item}#{len(same) + 1}"
        same.append(row)
        row.pop("_row", None)
        kept.append(row)
    return ImportResult(pd.DataFrame(kept), problems_frame(problems))

"""Shared pieces of the format readers: level synonyms, audio lookup, the import result."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fsclap.manifest import ATTRIBUTE_LEVELS

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")

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


def normalise_level(attribute: str, value) -> tuple[str, str]:
    """``(level, original)``: the manifest's level for a dataset's value, ``unknown`` if it has none
    (e.g. TextrolSpeech's ``contempt``); the original spelling is kept for the ``<attr>_label`` column."""
    if value is None or (isinstance(value, float) and value != value):
        return "unknown", ""
    original = str(value).strip()
    level = original.lower()
    level = SYNONYMS.get(attribute, {}).get(level, level)
    return (level if level in ATTRIBUTE_LEVELS[attribute] else "unknown"), original


class AudioIndex:
    """Finds audio files under a root by relative path, by stem, or by a dash-joined path key
    (TextrolSpeech's ``item_name`` joins the path components of the original corpora with ``-``)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root else None
        self.by_key: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        if self.root is None or not self.root.is_dir():
            return
        for folder, _, files in os.walk(self.root):
            for name in files:
                path = Path(folder) / name
                if path.suffix.lower() not in AUDIO_SUFFIXES:
                    continue
                parts = path.relative_to(self.root).with_suffix("").parts
                for k in range(len(parts)):
                    self.by_key.setdefault("-".join(parts[k:]), []).append(path)
                self.by_stem.setdefault(path.stem, []).append(path)

    def resolve_path(self, value: str, base: Path) -> Path | None:
        path = Path(value).expanduser()
        for candidate in (
            [path]
            if path.is_absolute()
            else [base / path, *([self.root / path] if self.root else [])]
        ):
            if candidate.is_file():
                return Path(os.path.normpath(candidate))
        return None

    def by_item_name(self, item: str) -> tuple[Path | None, str]:
        """The one file whose dash-joined path ends like ``item`` (leading components of ``item``
        may name folders above the root); ``(None, why)`` when none or several match."""
        chunks = item.split("-")
        for k in range(len(chunks)):
            hits = self.by_key.get("-".join(chunks[k:]))
            if hits:
                if len(hits) > 1:
                    return None, f"item {item!r} matches {len(hits)} audio files"
                return hits[0], ""
        hits = self.by_stem.get(chunks[-1], [])
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
    """The imported rows, a repeated clip id keeping its first row (the others become problems)."""
    frame = pd.DataFrame(rows)
    if len(frame) and frame["clip_id"].duplicated().any():
        dup = frame["clip_id"].duplicated(keep="first")
        problems = problems + [
            (-1, c, f"repeated {id_name}; first kept") for c in frame.loc[dup, "clip_id"]
        ]
        frame = frame[~dup].reset_index(drop=True)
    return ImportResult(frame, problems_frame(problems))

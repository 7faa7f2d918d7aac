"""HuggingFace ``datasets`` Parquet layout: ``data/{split}-00000-of-00001.parquet`` + ``README.md``.

The README's YAML header declares the splits (``configs: data_files``) and the features, so
``datasets.load_dataset(folder)`` reads it as a ``DatasetDict``; the Parquet schema also carries
the ``huggingface`` features metadata, so the ``audio`` column is an ``Audio`` feature
(``{"bytes", "path"}``). Audio bytes are embedded by default (one self-contained folder, as on the
Hub); ``embed_audio=False`` stores paths relative to the folder instead. Reading the audio through
``datasets`` needs ``Audio(decode=False)`` on a CPU install (decoding needs torchcodec); the bytes
are then what soundfile reads.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fsclap.errors import FsclapError
from fsclap.io import atomic_path, parquet_problem, write_text
from fsclap.manifest import COLUMN_ALIASES, SPLITS, ManifestError
from pipeline.formats.common import ImportResult, absolute, problems_frame, relative

SHARD = "{split}-00000-of-00001.parquet"
STRING_COLUMNS = (
    "clip_id",
    "caption",
    "caption_en",
    "caption_zh",
    "text",
    "speaker_id",
    "gender",
    "pitch",
    "speed",
    "energy",
    "emotion",
    "drama_id",
    "episode_id",
)
SOUNDFILE_SUFFIXES = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg", "MP3": ".mp3"}
FLOAT_COLUMNS = ("start_s", "end_s", "duration_s", "f0_median_hz", "speech_rate", "rms_dbfs")


def _features(columns: list[str]) -> dict:
    features = {"audio": {"_type": "Audio"}}
    for col in columns:
        features[col] = {"dtype": "float64" if col in FLOAT_COLUMNS else "string", "_type": "Value"}
    return features


def write_hf_parquet(
    frame: pd.DataFrame, out_dir: str | Path, embed_audio: bool = True, name: str = "fsclap"
) -> Path:
    out_dir = Path(out_dir)
    columns = [c for c in (*STRING_COLUMNS, *FLOAT_COLUMNS) if c in frame.columns]
    features = _features(columns)
    schema = pa.schema(
        [
            pa.field(
                "audio", pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])
            )
        ]
        + [pa.field(c, pa.float64() if c in FLOAT_COLUMNS else pa.string()) for c in columns],
        metadata={b"huggingface": json.dumps({"info": {"features": features}}).encode()},
    )
    splits = (
        frame["split"].fillna("train")
        if "split" in frame.columns
        else pd.Series("train", index=frame.index)
    )
    written = []
    for split in [s for s in (*SPLITS, *sorted(set(splits) - set(SPLITS))) if (splits == s).any()]:
        part = frame[splits == split]
        audio = []
        for p in part["audio_path"]:
            path = Path(absolute(p))
            if not path.is_file():
                raise FsclapError(f"cannot export to hf-parquet: audio file not found: {path}")
            audio.append(
                {"bytes": path.read_bytes(), "path": path.name}
                if embed_audio
                else {"bytes": None, "path": relative(path, out_dir)}
            )
        data = {"audio": audio}
        for col in columns:
            values = part[col]
            data[col] = (
                pd.to_numeric(values, errors="coerce").tolist()
                if col in FLOAT_COLUMNS
                else [None if pd.isna(v) else str(v) for v in values]
            )
        table = pa.Table.from_pydict(data, schema=schema)
        target = out_dir / "data" / SHARD.format(split=split)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)
        written.append((split, len(part)))
    write_text(out_dir / "README.md", _card(name, written, features))
    return out_dir


def _card(name: str, splits: list[tuple[str, int]], features: dict) -> str:
    import yaml

    header = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s, _ in splits],
            }
        ],
        "dataset_info": {
            "features": [
                {"name": k, "dtype": "audio" if v["_type"] == "Audio" else v["dtype"]}
                for k, v in features.items()
            ],
            "splits": [{"name": s, "num_examples": n} for s, n in splits],
        },
        "task_categories": ["audio-classification", "text-to-audio"],
        "tags": ["speech", "speaking-style", "captions"],
    }
    rows = "\n".join(f"| {s} | {n} |" for s, n in splits)
    return (
        f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n\n# {name}\n\n"
        "Speech clips with natural-language speaking-style captions (exported by fsclap).\n\n"
        f"| split | clips |\n|---|---|\n{rows}\n"
    )


def _audio_column(table: pa.Table) -> str:
    """The column the ``huggingface`` schema metadata declares ``Audio`` (``audio`` if none does)."""
    meta = (table.schema.metadata or {}).get(b"huggingface")
    features = json.loads(meta).get("info", {}).get("features", {}) if meta else {}
    declared = [k for k, v in features.items() if isinstance(v, dict) and v.get("_type") == "Audio"]
    return declared[0] if declared else "audio"


def _suffix(item: dict) -> str | None:
    """The embedded audio's file suffix: from its ``path``, else the format soundfile reads in the
    bytes (no decoding through ``datasets``, which needs torchcodec); ``None`` when neither tells."""
    import soundfile as sf

    suffix = Path(item.get("path") or "").suffix
    if suffix:
        return suffix
    try:
        info = sf.info(io.BytesIO(item["bytes"]))
    except (RuntimeError, TypeError, sf.LibsndfileError):
        return None
    return SOUNDFILE_SUFFIXES.get(info.format, f".{info.format.lower()}")


def read_hf_parquet(folder: str | Path, audio_dir: str | Path | None = None) -> ImportResult:
    """Read the layout back. Embedded audio is written under ``audio_dir/<split>/`` (beside the
    manifest being written, never into the dataset read), named as its ``path`` when unique;
    path-only audio resolves against ``folder``. Unreadable or missing audio is a problem row."""
    folder = Path(absolute(folder))
    shards = sorted((folder / "data").glob("*.parquet"))
    if not shards:
        raise ManifestError(f"no data/*.parquet under {folder}")
    if audio_dir is not None:
        audio_dir = Path(absolute(audio_dir))
        if audio_dir == folder or folder in audio_dir.parents:
            raise FsclapError(f"will not write audio into the dataset being read: {audio_dir}")
    frames, problems = [], []
    for shard in shards:
        split = shard.name.split("-")[0]
        try:
            arrow = pq.read_table(shard)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ManifestError(
                f"{shard} is not a readable Parquet shard ({parquet_problem(exc, shard)[:140]})"
            ) from None
        column = _audio_column(arrow)
        if column not in arrow.column_names:
            raise ManifestError(f"{shard} has no audio column")
        table = arrow.to_pandas()
        names = [Path(a.get("path") or "").name for a in table[column]]
        repeated = {n for n, k in Counter(names).items() if k > 1}
        paths: list[str | None] = []
        for i, item in enumerate(table[column]):
            clip = str(table["clip_id"].iloc[i]) if "clip_id" in table else f"{split}{i:07d}"
            clip = clip.replace("/", "_").replace(os.sep, "_")
            if item.get("bytes") is None:
                path = folder / str(item.get("path") or "")
                ok = bool(item.get("path")) and path.is_file()
                paths.append(absolute(path) if ok else None)
                if not ok:
                    problems.append((i, clip, f"audio {item.get('path')!r} not found in {folder}"))
                continue
            suffix = _suffix(item)
            if suffix is None:
                problems.append((i, clip, "embedded audio of unknown format (no file name)"))
                paths.append(None)
                continue
            if audio_dir is None:
                raise FsclapError(f"{folder} embeds audio: give a folder to write it to")
            name = names[i] if names[i] and names[i] not in repeated else f"{clip}{suffix}"
            target = audio_dir / split / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists() or target.read_bytes() != item["bytes"]:
                with atomic_path(target) as tmp:
                    tmp.write_bytes(item["bytes"])
            paths.append(str(target))
        table = table.drop(columns=[column]).rename(columns=COLUMN_ALIASES)
        if "caption" not in table.columns:
            raise ManifestError(f"{shard} has no caption column (caption or style_prompt)")
        table.insert(0, "audio_path", paths)
        table["split"] = split
        frames.append(table[[p is not None for p in paths]])
    return ImportResult(pd.concat(frames, ignore_index=True), problems_frame(problems))

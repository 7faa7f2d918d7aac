"""Publishing a dataset version: clips + captions + provenance + disjoint splits + a data card.

A version is a folder ``DIR/datasets/<version>/`` holding

* ``train.parquet``, ``val.parquet``, ``test.parquet`` — clip manifests (contract in
  docs/design.md; audio paths relative to the folder, so the data root can move) with attributes,
  measured numbers and provenance columns (drama, episode, speaker, segment, times in the episode);
* ``dataset.json`` — version id, counts, split rule used, config, stage versions and model ids;
* ``README.md`` — the data card (counts, hours, speakers, attribute histograms) and ``plots/*.png``.

Version id
----------
``v-`` + the first 12 hex digits of SHA-256 over the sorted clip contents (clip id, SHA-256 of the
audio bytes, caption columns, attribute levels, speaker, drama) and the publish config. Unchanged
inputs give the same id, and publishing them again finds the folder and writes nothing.
Audio hashes are cached in ``DIR/datasets/.audio_sha256.parquet`` by (path, size, mtime).

Splits
------
No speaker may appear in two splits. Speaker ids are drama-level, so:

* with at least ``min_dramas`` dramas, whole **dramas** are assigned to splits (disjoint by drama and
  therefore by speaker);
* with fewer dramas a 3-way split by drama is impossible; then whole **speakers** are assigned
  (disjoint by speaker; dramas are shared between splits) — recorded as ``split_rule`` in
  ``dataset.json`` and the card;
* clips without a speaker id are grouped by episode (episode-level: the best available guarantee).

Groups are ordered by size (largest first, ties by a seeded hash) and each goes to the split
furthest below its target fraction of clips, so every split gets a group before any gets two.
With only one or two groups some splits stay empty (the card says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import Field

from fsclap.errors import FsclapError
from fsclap.io import sha256_file, write_json, write_parquet, write_text
from fsclap.layout import DataRoot, DatasetsDir
from fsclap.log import get_logger
from fsclap.manifest import SPLITS, ClipManifest
from pipeline.stage import Stage, StageConfig, StageContext
from pipeline.tables import Episode

log = get_logger("pipeline.publish")

PUBLISH_VERSION = "1"
HASHED_COLUMNS = [
    "clip_id",
    "caption",
    "caption_en",
    "caption_zh",
    "gender",
    "pitch",
    "speed",
    "energy",
    "emotion",
    "speaker_id",
    "drama_id",
    "start_s",
    "end_s",
]
HISTOGRAM_LEVELS = ["gender", "pitch", "speed", "energy", "emotion"]
HISTOGRAM_VALUES = {
    "f0_median_hz": "median F0 (Hz)",
    "speech_rate": "speaking rate (units/s)",
    "rms_dbfs": "active RMS (dBFS)",
    "duration_s": "duration (s)",
}


class PublishConfig(StageConfig):
    fractions: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="Target clip fractions train/val/test."
    )
    min_dramas: int = Field(
        3, ge=3, description="Dramas needed to split by drama; fewer: split by speaker."
    )
    seed: int = Field(0, description="Tie-break seed of the split assignment.")
    keep_splits: bool = Field(
        False,
        description="Keep an existing `split` column (imported datasets) instead of assigning.",
    )
    name: str = Field("fsclap-drama-style", description="Dataset name on the card.")


@dataclass
class PublishResult:
    version: str
    path: Path
    counts: dict = field(default_factory=dict)
    split_rule: str = ""
    reused: bool = False

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        return (
            f"dataset {self.version} ({self.split_rule}; {counts})"
            f"{' already published' if self.reused else ''} -> {self.path}"
        )


# --- splits ---------------------------------------------------------------------------------------


def _seeded(key: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()


def assign_splits(frame: pd.DataFrame, config: PublishConfig) -> tuple[pd.Series, str]:
    """A split per row and the rule used (see the module docstring)."""
    speakers = (
        frame["speaker_id"]
        if "speaker_id" in frame.columns
        else pd.Series([None] * len(frame), index=frame.index)
    )
    episodes = frame["episode_id"] if "episode_id" in frame.columns else frame["clip_id"]
    speaker_key = [
        f"spk:{s}" if isinstance(s, str) and s else f"ep:{e}" for s, e in zip(speakers, episodes)
    ]
    dramas = (
        frame["drama_id"]
        if "drama_id" in frame.columns
        else pd.Series([None] * len(frame), index=frame.index)
    )
    n_dramas = dramas.dropna().nunique()
    if n_dramas >= config.min_dramas and dramas.notna().all():
        groups, rule = dramas.astype(str).tolist(), "by drama"
    else:
        groups = speaker_key
        rule = (
            f"by speaker ({n_dramas} dramas < {config.min_dramas}: dramas shared between splits)"
            if n_dramas
            else "by speaker (no drama ids)"
        )
    sizes = pd.Series(groups).value_counts()
    order = sorted(sizes.index, key=lambda g: (-sizes[g], _seeded(g, config.seed)))
    targets = np.asarray(config.fractions, dtype=float) / sum(config.fractions)
    counts = np.zeros(3)
    split_of = {}
    for group in order:
        filled = counts / max(len(frame), 1) / np.maximum(targets, 1e-9)
        empty = [i for i in range(3) if counts[i] == 0 and targets[i] > 0]
        choice = empty[0] if empty else int(np.argmin(filled))
        split_of[group] = SPLITS[choice]
        counts[choice] += sizes[group]
    return pd.Series([split_of[g] for g in groups], index=frame.index), rule


# --- version id -----------------------------------------------------------------------------------


class AudioHashCache:
    """SHA-256 of audio files, cached by (path, size, mtime) in a Parquet file."""

    def __init__(self, path: Path | None):
        self.path = path
        self.known: dict[str, tuple[int, int, str]] = {}
        self.dirty = False
        if path is not None and path.exists():
            for r in pd.read_parquet(path).itertuples(index=False):
                self.known[r.path] = (int(r.size), int(r.mtime_ns), r.sha256)

    def get(self, file: str) -> str:
        try:
            stat = os.stat(file)
        except OSError:
            return "missing"
        hit = self.known.get(file)
        if hit and hit[:2] == (stat.st_size, stat.st_mtime_ns):
            return hit[2]
        digest = sha256_file(file)
        self.known[file] = (stat.st_size, stat.st_mtime_ns, digest)
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.path is not None and self.dirty:
            rows = [
                {"path": p, "size": s, "mtime_ns": m, "sha256": h}
                for p, (s, m, h) in self.known.items()
            ]
            write_parquet(self.path, pd.DataFrame(rows))


def version_id(frame: pd.DataFrame, config: PublishConfig, cache: AudioHashCache) -> str:
    """Content address of a dataset: sorted clip contents + captions + config (no paths, no times)."""
    digest = hashlib.sha256()
    params = config.model_dump(mode="json")
    params.pop("workers", None)
    digest.update(
        json.dumps({"publish": PUBLISH_VERSION, "config": params}, sort_keys=True).encode()
    )
    columns = [c for c in HASHED_COLUMNS if c in frame.columns]
    for row in frame.sort_values("clip_id").itertuples(index=False):
        r = row._asdict()
        record = [cache.get(r["audio_path"])] + [_plain(r[c]) for c in columns]
        digest.update(json.dumps(record, ensure_ascii=False, default=str).encode())
    return "v-" + digest.hexdigest()[:12]


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


# --- the card -------------------------------------------------------------------------------------


def plot_histograms(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """Attribute level counts per split and histograms of the measured numbers (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    levels = [c for c in HISTOGRAM_LEVELS if c in frame.columns]
    if levels:
        fig, axes = plt.subplots(1, len(levels), figsize=(3.2 * len(levels), 3.2), squeeze=False)
        for ax, col in zip(axes[0], levels):
            table = (
                frame.groupby([col, "split"])
                .size()
                .unstack(fill_value=0)
                .reindex(columns=list(SPLITS), fill_value=0)
            )
            table.plot.bar(ax=ax, stacked=True, legend=col == levels[-1], width=0.8)
            ax.set_title(col)
            ax.set_xlabel("")
            ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        written.append(_save(fig, folder / "attribute_levels.png"))
    values = [
        c
        for c in HISTOGRAM_VALUES
        if c in frame.columns and pd.to_numeric(frame[c], errors="coerce").notna().any()
    ]
    if values:
        fig, axes = plt.subplots(1, len(values), figsize=(3.2 * len(values), 3.0), squeeze=False)
        for ax, col in zip(axes[0], values):
            data = pd.to_numeric(frame[col], errors="coerce")
            if col == "f0_median_hz" and "gender" in frame.columns:
                for gender in ("female", "male", "unknown"):
                    part = data[frame["gender"] == gender].dropna()
                    if len(part):
                        ax.hist(part, bins=30, alpha=0.6, label=gender)
                ax.legend(fontsize=7)
            else:
                ax.hist(data.dropna(), bins=30)
            ax.set_title(HISTOGRAM_VALUES[col], fontsize=9)
        fig.tight_layout()
        written.append(_save(fig, folder / "measured_values.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def data_card(frame: pd.DataFrame, meta: dict, plots: list[Path]) -> str:
    rows = []
    for split in SPLITS:
        part = frame[frame["split"] == split]
        hours = (
            pd.to_numeric(part.get("duration_s"), errors="coerce").sum() / 3600
            if "duration_s" in part
            else float("nan")
        )
        rows.append(
            f"| {split} | {len(part)} | {hours:.2f} | {part['speaker_id'].nunique() if 'speaker_id' in part else '-'} "
            f"| {part['drama_id'].nunique() if 'drama_id' in part else '-'} |"
        )
    level_lines = []
    for col in HISTOGRAM_LEVELS:
        if col in frame.columns:
            counts = frame[col].value_counts()
            level_lines.append(f"- **{col}**: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    examples = "\n".join(f"- `{r.clip_id}`: {r.caption}" for r in frame.head(5).itertuples())
    images = "\n".join(f"![{p.stem}](plots/{p.name})" for p in plots)
    emotion = meta.get("emotion_source") or "unknown"
    return f"""# {meta["name"]} — {meta["version"]}

{len(frame)} clips, {meta["hours"]:.2f} h of speech, {meta["speakers"]} speakers, {meta["dramas"]} dramas.
Published by fsclap (publish v{PUBLISH_VERSION}); content-addressed version id (same inputs, same id).

| split | clips | hours | speakers | dramas |
|---|---|---|---|---|
{chr(10).join(rows)}

Splits: **{meta["split_rule"]}**. No speaker appears in two splits (speaker ids are drama-level;
one actor in two dramas has two ids and cannot be matched across dramas).

## Attributes

Levels are measured, not annotated: F0 (Praat), active RMS level, speaking rate (characters/s for
Chinese, syllables/s for English transcripts, onsets otherwise), each binned against a reference
stored per clip in `<attr>_ref`: by default pitch against the clip's gender group in the corpus,
energy against all clips, speed against the speaker's own usual rate; literature defaults where a
group is too small (rule in `pipeline/attributes.py`). Gender comes from F0 and vocal-tract length
(a two-feature logistic model) with a confidence (`gender_confidence`). Emotion: {emotion}.
`unknown` levels are never described in captions.

{chr(10).join(level_lines)}

{images}

## Caption examples

{examples}

## Provenance

Columns `drama_id`, `episode_id`, `segment_id`, `speaker_id`, `episode_start_s`/`episode_end_s` trace every
clip to its source; `dataset.json` lists stage versions and model ids:

```json
{json.dumps(meta.get("provenance", {}), indent=2, ensure_ascii=False)}
```
"""


# --- publishing -----------------------------------------------------------------------------------


def publish_frame(
    frame: pd.DataFrame,
    datasets_dir: str | Path,
    config: PublishConfig | None = None,
    provenance: dict | None = None,
) -> PublishResult:
    """Publish clip rows (canonical columns, absolute ``audio_path``) as a dataset version."""
    config = config or PublishConfig()
    datasets = DatasetsDir(datasets_dir)
    datasets_dir = datasets.path
    frame = frame.reset_index(drop=True).copy()
    if frame.empty:
        raise FsclapError("nothing to publish: the clip manifest is empty")
    if config.keep_splits and "split" in frame.columns and frame["split"].isin(SPLITS).all():
        rule = "kept from the input"
    else:
        frame["split"], rule = assign_splits(frame, config)
    check_disjoint(frame)
    cache = AudioHashCache(datasets.audio_hash_cache)
    version = version_id(frame, config, cache)
    cache.save()
    target = datasets.version(version)
    counts = frame["split"].value_counts().reindex(list(SPLITS), fill_value=0).to_dict()
    if (target / "dataset.json").exists():
        return PublishResult(version, target, counts, rule, reused=True)
    datasets_dir.mkdir(parents=True, exist_ok=True)
    for stale in datasets_dir.glob(
        f".{version}.*"
    ):  # left by a run killed while writing this version
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=datasets_dir))
    try:
        stored = frame.copy()
        stored["audio_path"] = [os.path.relpath(p, target) for p in stored["audio_path"]]
        for split in SPLITS:
            write_parquet(
                staging / f"{split}.parquet",
                stored[stored["split"] == split].reset_index(drop=True),
            )
        meta = {
            "name": config.name,
            "version": version,
            "split_rule": rule,
            "counts": counts,
            "hours": float(pd.to_numeric(frame.get("duration_s"), errors="coerce").sum() / 3600)
            if "duration_s" in frame
            else 0.0,
            "speakers": int(frame["speaker_id"].nunique()) if "speaker_id" in frame else 0,
            "dramas": int(frame["drama_id"].nunique()) if "drama_id" in frame else 0,
            "config": config.model_dump(mode="json"),
            "provenance": provenance or {},
            "emotion_source": ", ".join(
                sorted(frame["emotion_source"].dropna().astype(str).unique())
            )
            if "emotion_source" in frame
            else "not recorded",
            "columns": list(stored.columns),
        }
        plots = plot_histograms(frame, staging / "plots")
        write_text(staging / "README.md", data_card(frame, meta, plots))
        write_json(staging / "dataset.json", meta)
        if target.exists():  # a half-written folder of an interrupted run
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    datasets.write_latest(version)
    return PublishResult(version, target, counts, rule)


def check_disjoint(frame: pd.DataFrame) -> None:
    """Fail loudly if a speaker (or, when split by drama, a drama) sits in two splits."""
    if "speaker_id" in frame.columns:
        spread = frame.dropna(subset=["speaker_id"]).groupby("speaker_id")["split"].nunique()
        bad = spread[spread > 1]
        if len(bad):
            raise FsclapError(
                f"speaker(s) {', '.join(map(str, bad.index[:5]))} appear in more than one split"
            )


def publish_manifest(
    manifest: str | Path,
    datasets_dir: str | Path,
    config: PublishConfig | None = None,
    provenance: dict | None = None,
) -> PublishResult:
    """Publish any clip manifest (e.g. ``fsclap caption`` output) as a dataset version."""
    clips = ClipManifest.read(manifest)
    frame = clips.frame
    if (frame["caption"].str.strip() == "").any():
        frame = frame[frame["caption"].str.strip() != ""]
    return publish_frame(frame, datasets_dir, config, provenance)


# --- the corpus-builder stage ---------------------------------------------------------------------


class Publish(Stage):
    """Per episode: how many of its clips the clip manifest holds; :meth:`finish` publishes."""

    name = "publish"
    version = PUBLISH_VERSION
    Config = PublishConfig
    done_status = "published"

    def __init__(self, config=None, *, context: StageContext):
        super().__init__(config, context=context)
        self._clips: tuple[int, int, pd.DataFrame] | None = None
        self.result: PublishResult | None = None

    @property
    def manifest_path(self) -> Path:
        return self.context.layout.clips_table

    def clips(self) -> pd.DataFrame | None:
        path = self.manifest_path
        if not path.exists():
            return None
        stat = path.stat()
        if self._clips is None or self._clips[:2] != (stat.st_mtime_ns, stat.st_size):
            self._clips = (stat.st_mtime_ns, stat.st_size, pd.read_parquet(path))
        return self._clips[2]

    def input_hash(self, episode: Episode) -> str | None:
        caption_key = episode.stamp("caption").get("key")
        return caption_key if caption_key and self.manifest_path.exists() else None

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.manifest_path]

    def process(self, episode: Episode) -> Episode:
        clips = self.clips()
        mine = (
            clips[clips["episode_id"] == episode.episode_id]
            if clips is not None
            else pd.DataFrame()
        )
        result = episode.copy()
        result.n_clips = int(len(mine))
        return result

    def finish(self) -> PublishResult | None:
        clips = self.clips()
        if clips is None or clips.empty:
            log.info("publish: no clip manifest yet, nothing published")
            return None
        frame = clips.copy()
        frame["audio_path"] = [
            str((self.manifest_path.parent / p).resolve()) for p in frame["audio_path"]
        ]
        self.result = publish_frame(
            frame,
            self.context.layout.datasets.path,
            self.config,
            corpus_provenance(self.context.data_root, frame),
        )
        log.info("%s", self.result.summary())
        return self.result


def corpus_provenance(data_root: Path, frame: pd.DataFrame) -> dict:
    """Stage versions and model ids of the data root's episodes (from their stage stamps)."""
    provenance: dict = {}
    episodes_path = DataRoot(data_root).episodes_table
    if episodes_path.exists():
        episodes = pd.read_parquet(episodes_path)
        episodes = episodes[episodes["episode_id"].isin(set(frame.get("episode_id", [])))]
        versions = {}
        for col in episodes.columns:
            if col.endswith("_version"):
                values = sorted(episodes[col].dropna().astype(str).unique())
                if values:
                    versions[col[: -len("_version")]] = values
        provenance["stage_versions"] = versions
        for col in ("separation_model", "separation"):
            if col in episodes.columns:
                provenance[col] = sorted(episodes[col].dropna().astype(str).unique())
    for col in ("diarizer", "embedding_model", "emotion_source", "caption_stage_version"):
        if col in frame.columns:
            provenance[col] = sorted(frame[col].dropna().astype(str).unique())
    return provenance


def publish_stage(settings, context: StageContext) -> Publish:
    """Runner factory: ``("publish", publish_stage)`` in ``pipeline.runner.PIPELINE`` after caption."""
    config = dict(settings.stages.get("publish", {}))
    config.setdefault("seed", settings.seed)
    return Publish(config, context=context)

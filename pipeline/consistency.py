"""The speaker-consistency filter of the paper (§3.3, eq. 4–5).

Within one speaker cluster of n clips with speaker embeddings v_1..v_n,

    cos(θ_ij) = v_i·v_j / (‖v_i‖ ‖v_j‖)                         (eq. 4)
    s̄_i      = 1/(n-1) Σ_{j≠i} (cos(θ_ij) + 1) / 2              (eq. 5)

and a clip is kept when s̄_i ≥ threshold (0.65 in the paper, for CAM++ embeddings).

Vectorised: with unit rows u_i, Σ_{j≠i} cos(θ_ij) = u_i·(Σ_j u_j) − u_i·u_i, so one matrix
product per cluster (the n×d matrix times its column sum) gives every s̄_i in O(n·d) time and
memory — no n×n similarity matrix, so a 10k-clip cluster costs milliseconds. Computed in float64;
a test checks it against the direct double loop of eq. 4–5.

Defined outcomes besides kept / dropped, each with a ``reason``:

* ``single_clip_cluster`` — a cluster of one clip: eq. 5 divides by n−1 = 0, so s̄ is undefined
  (NaN). Such a clip cannot be shown to belong to its speaker and is not kept by default
  (``keep_single=True`` keeps it, still with NaN s̄).
* ``invalid_embedding`` — a zero-length or non-finite embedding (no direction, so no cosine): NaN
  s̄, not kept, and left out of the other clips' means (they are computed over the valid ones).
* ``unassigned`` — no speaker label (NaN/None/negative label): not scored, not kept.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from fsclap.io import sha256_file, write_parquet
from fsclap.layout import DataRoot
from fsclap.log import get_logger
from pipeline.segments import SEGMENT_COLUMNS, empty_frame, typed
from pipeline.speakers import LINK_THRESHOLDS, centroids_from, link_speakers
from pipeline.stage import (
    FileStateCache,
    Stage,
    StageConfig,
    StageError,
    file_states,
    is_up_to_date,
    short_hash,
    write_stamp,
)
from pipeline.tables import Episode

log = get_logger("pipeline.consistency")

# Default keep-threshold per embedding model (eq. 5 scale, 0.5 = orthogonal, 1 = identical).
# campplus: the paper's value. resemblyzer: measured by benchmarks/diarize_consistency.py on 3
# generated dramas × 4 episodes with music (161 scored clips): resemblyzer's d-vectors are
# non-negative (ReLU output), so every cosine is ≥ 0 and s̄ ≥ 0.5; clean clips (one speaker, the
# cluster's own) have median s̄ 0.864, impure ones (mixed, or another speaker's) 0.852, and no
# clip falls below 0.72 — the paper's 0.65 would keep everything. 0.83 gave the best balanced
# accuracy (59.7 %: keeps 82 % of clean clips, removes 37 % of impure ones); the separation is
# weak on these synthetic, per-line restyled voices, so treat it as a coarse filter.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "campplus": 0.65,
    "resemblyzer": 0.83,
}

REASON_KEPT = "kept"
REASON_LOW = "low_consistency"
REASON_SINGLE = "single_clip_cluster"
REASON_INVALID = "invalid_embedding"
REASON_UNASSIGNED = "unassigned"


def default_threshold(embedding_model: str) -> float:
    try:
        return DEFAULT_THRESHOLDS[embedding_model]
    except KeyError:
        raise ValueError(
            f"no default consistency threshold for embedding model {embedding_model!r}; "
            f"known: {sorted(DEFAULT_THRESHOLDS)} (set the threshold explicitly)"
        ) from None


def mean_similarity(embeddings: np.ndarray) -> np.ndarray:
    """s̄_i of eq. 5 for one cluster (rows = clips), float64. NaN for every row when n < 2.

    Rows must have finite, non-zero norms (see :func:`consistency_scores` for the general case).
    """
    v = np.asarray(embeddings, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (clips × dims), got shape {v.shape}")
    n = v.shape[0]
    if n < 2:
        return np.full(n, np.nan)
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    # Σ_{j≠i} cos_ij = u_i·Σ_j u_j − u_i·u_i  (one matrix-vector product for the whole cluster)
    cos_sum = u @ u.sum(axis=0) - np.einsum("ij,ij->i", u, u)
    return (cos_sum / (n - 1) + 1.0) / 2.0


def mean_similarity_loop(embeddings: np.ndarray) -> np.ndarray:
    """Eq. 4–5 written as the paper states them (double loop, float64): the reference for tests."""
    v = np.asarray(embeddings, dtype=np.float64)
    n = len(v)
    out = np.full(n, np.nan)
    if n < 2:
        return out
    for i in range(n):
        total = 0.0
        for j in range(n):
            if j == i:
                continue
            cos = float(np.dot(v[i], v[j]) / (np.linalg.norm(v[i]) * np.linalg.norm(v[j])))
            total += (cos + 1.0) / 2.0
        out[i] = total / (n - 1)
    return out


@dataclass(frozen=True)
class ConsistencyResult:
    consistency: np.ndarray  # s̄_i (float64, NaN where undefined)
    kept: np.ndarray  # bool
    reason: np.ndarray  # object (str)
    cluster_size: np.ndarray  # int: valid clips in the clip's cluster


def _is_unassigned(label) -> bool:
    if label is None or (isinstance(label, float) and np.isnan(label)) or label is pd.NA:
        return True
    return isinstance(label, (int, np.integer)) and label < 0


def consistency_scores(
    embeddings: np.ndarray,
    labels,
    threshold: float,
    keep_single: bool = False,
) -> ConsistencyResult:
    """Score every clip against the other clips of its cluster (eq. 4–5) and apply the threshold.

    ``labels``: one cluster id per row (str or int; None/NaN/negative = unassigned).
    """
    v = np.asarray(embeddings, dtype=np.float64)
    n = len(v)
    if v.ndim != 2 or len(labels) != n:
        raise ValueError(
            f"need one label per embedding row: {len(labels)} labels, embeddings shape {v.shape}"
        )
    labels = pd.Series(list(labels), dtype=object)
    unassigned = np.array([_is_unassigned(x) for x in labels], dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(v, axis=1) if n else np.zeros(0)
    usable = np.isfinite(v).all(axis=1) & np.isfinite(norms) & (norms > 0)
    valid = usable & ~unassigned

    consistency = np.full(n, np.nan)
    size = np.zeros(n, dtype=np.int64)
    for _, index in labels[valid].groupby(labels[valid], sort=False).groups.items():
        rows = np.asarray(index)
        consistency[rows] = mean_similarity(v[rows])
        size[rows] = len(rows)

    reason = np.full(n, REASON_KEPT, dtype=object)
    kept = np.zeros(n, dtype=bool)
    scored = valid & (size >= 2)
    kept[scored] = consistency[scored] >= threshold
    reason[scored & ~kept] = REASON_LOW
    single = valid & (size == 1)
    reason[single] = REASON_SINGLE
    kept[single] = keep_single
    reason[unassigned] = REASON_UNASSIGNED
    reason[~usable] = REASON_INVALID
    return ConsistencyResult(consistency=consistency, kept=kept, reason=reason, cluster_size=size)


# --- stage ``consistency``: drama-level speaker ids + the filter -------------------------------
#
# Per-episode diarize outputs (DIR/segments/<drama>/<episode>.parquet + .npy) are combined per
# drama: speaker centroids are linked across episodes (pipeline.speakers.link_speakers), every
# candidate segment is scored within its drama-level speaker (eq. 4–5) and the drama's table is
# written to DIR/segments/<drama>.parquet. The stage runs per episode like every other stage, but
# its input is the whole drama's diarize output (its resume key hashes all of it), so adding an
# episode re-scores the drama — speaker ids and s̄ depend on every clip of the speaker. The drama
# is computed once per input and shared by its episodes; each newly scored drama replaces its rows
# in DIR/manifests/segments.parquet (:meth:`Consistency.finish` rebuilds it from all drama tables).


class ConsistencyFailed(StageError):
    """The drama's diarize outputs cannot be combined (e.g. embeddings of two different models)."""


class ConsistencyConfig(StageConfig):
    threshold: float | None = Field(
        None, gt=0, le=1, description="Keep s̄ ≥ this; None: the embedding model's default."
    )
    keep_single: bool = Field(
        False, description="Keep clips that are their speaker's only clip (s̄ undefined)."
    )
    scope: Literal["drama", "episode"] = Field(
        "drama", description="Cluster = drama-level speaker, or the diarizer's episode label."
    )
    link_threshold: float | None = Field(
        None,
        gt=-1,
        le=1,
        description="Centroid cosine to link speakers across episodes; None: model default.",
    )
    separate_same_episode: bool = Field(True, description="Never link two labels of one episode.")
    workers: int = Field(1, ge=1)


class Consistency(Stage):
    name = "consistency"
    version = "1"
    Config = ConsistencyConfig
    done_status = "scored"

    def __init__(self, config=None, *, context):
        super().__init__(config, context=context)
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[str, pd.DataFrame]] = {}  # drama -> (input hash, table)
        self._hashes = FileStateCache(sha256_file)  # the drama's input tables' contents

    def episode_table(self, episode: Episode) -> Path:
        return self.context.layout.episode_segments(episode.drama_id, episode.episode_id)

    def drama_table(self, drama_id: str) -> Path:
        return self.context.layout.drama_segments(drama_id)

    def drama_state(self, drama_id: str) -> tuple[str, list[str]]:
        """The hash of the drama's inputs (every episode's segments table: name and content) and
        their paths (``*.parquet`` of the drama's segments folder, by name): the resume key and
        :meth:`score`'s memo. One directory scan and a stat per file, the content hashes cached
        by (path, mtime_ns, size): a refresh computes it for every episode."""
        folder = self.context.layout.drama_segments_dir(drama_id)
        try:
            with os.scandir(folder) as scan:
                entries = sorted(
                    (e for e in scan if e.name.endswith(".parquet")), key=lambda e: e.name
                )
        except OSError:
            entries = []
        parts = [(e.name, self._hashes.get(e.path, e.stat())) for e in entries]
        return short_hash(parts, 24), [e.path for e in entries]

    def input_hash(self, episode: Episode) -> str | None:
        if not self.episode_table(episode).exists():
            return None
        return self.drama_state(episode.drama_id)[0]

    def outputs(self, episode: Episode) -> list[Path]:
        return [self.drama_table(episode.drama_id)]

    def process(self, episode: Episode) -> Episode:
        table = self.score(episode.drama_id)
        mine = table[table["episode_id"] == episode.episode_id]
        result = episode.copy()
        result.n_kept_segments = int(mine["kept"].sum())
        result.kept_s = round(float(mine.loc[mine["kept"], "duration_s"].sum()), 3)
        result.n_drama_speakers = int(mine["speaker_id"].nunique())
        return result

    def score(self, drama_id: str) -> pd.DataFrame:
        """The drama's scored table (computed once per input, written atomically)."""
        digest, inputs = self.drama_state(drama_id)
        with self._lock:
            cached = self._memo.get(drama_id)
            if cached is not None and cached[0] == digest:
                return cached[1]
            table = score_drama(
                [pd.read_parquet(p) for p in inputs], self.context.abs, self.config, drama_id
            )
            write_parquet(self.drama_table(drama_id), table)
            update_segments_manifest(self.context.data_root, drama_id, table)
            self._memo[drama_id] = (digest, table)
            return table

    def finish(self) -> Path:
        """Rebuild DIR/manifests/segments.parquet from every drama's scored table (repair)."""
        return build_segments_manifest(self.context.data_root)


def segments_manifest_path(data_root: Path) -> Path:
    return DataRoot(data_root).segments_table


def update_segments_manifest(data_root: Path, drama_id: str, table: pd.DataFrame) -> Path:
    """Replace one drama's rows of DIR/manifests/segments.parquet (one atomic rewrite per scored
    drama, so a corpus of hundreds of dramas is not rewritten once per episode)."""
    path = segments_manifest_path(data_root)
    with _MANIFEST_LOCK:
        if not path.exists():
            return build_segments_manifest(data_root)
        current = pd.read_parquet(path)
        parts = [t for t in (current[current["drama_id"] != drama_id], table) if len(t)]
        frame = (
            typed(pd.concat(parts, ignore_index=True), SEGMENT_COLUMNS)
            if parts
            else empty_frame(SEGMENT_COLUMNS)
        )
        return write_parquet(path, frame)


def build_segments_manifest(data_root: Path) -> Path:
    """DIR/manifests/segments.parquet from every DIR/segments/<drama>.parquet (not rewritten
    while neither those tables nor it changed since the last rebuild: a refresh's finish step)."""
    data_root = Path(data_root)
    out = segments_manifest_path(data_root)
    stamp = out.with_name(SEGMENTS_MANIFEST_STAMP)
    with _MANIFEST_LOCK:
        paths = DataRoot(data_root).all_drama_segments()
        inputs = {"files": file_states(paths), "columns": SEGMENT_COLUMNS}
        if is_up_to_date(stamp, inputs, [out]):
            return out
        tables = [pd.read_parquet(p) for p in paths]
        tables = [t for t in tables if len(t)]
        frame = (
            typed(pd.concat(tables, ignore_index=True), SEGMENT_COLUMNS)
            if tables
            else empty_frame(SEGMENT_COLUMNS)
        )
        write_parquet(out, frame)
        write_stamp(stamp, inputs, [out])
        return out


#: Beside segments.parquet: what its last rebuild read (:func:`pipeline.stage.is_up_to_date`).
SEGMENTS_MANIFEST_STAMP = ".segments.inputs.json"


_MANIFEST_LOCK = threading.RLock()


def score_drama(
    episode_tables: list[pd.DataFrame], resolve, config: ConsistencyConfig, drama_id: str
) -> pd.DataFrame:
    """Link speakers across the drama's episodes and apply the consistency filter."""
    frames = [t for t in episode_tables if len(t)]
    if not frames:
        return empty_frame(SEGMENT_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(
        ["episode_index", "episode_id", "start_s"], na_position="last", kind="stable"
    )
    table = table.reset_index(drop=True)
    candidate = table["reason"].isna().to_numpy()
    models = sorted(table.loc[candidate, "embedding_model"].dropna().unique())
    if len(models) > 1:
        raise ConsistencyFailed(
            f"drama {drama_id} mixes speaker embeddings of {', '.join(models)}; "
            "re-run diarize for all its episodes with one profile"
        )
    model = models[0] if models else None

    # embeddings of every row, from the per-episode .npy files
    dims = None
    vectors: list[np.ndarray | None] = [None] * len(table)
    for path, rows in table.groupby("embedding_path", sort=False).groups.items():
        matrix = np.load(resolve(path))
        dims = matrix.shape[1]
        for row in rows:
            vectors[row] = matrix[int(table.at[row, "embedding_row"])]
    embeddings = np.stack(
        [v if v is not None else np.zeros(dims or 1, dtype=np.float32) for v in vectors]
    )

    # drama-level speaker ids from episode-level centroids
    order = table.groupby("episode_id", sort=False)["episode_index"].first()
    positions = {eid: i for i, eid in enumerate(order.index)}
    centroids = []
    for episode_id, rows in table[candidate].groupby("episode_id", sort=False).groups.items():
        rows = np.asarray(rows)
        centroids += centroids_from(
            episode_id,
            table.loc[rows, "episode_speaker"].tolist(),
            embeddings[rows],
            table.loc[rows, "start_s"].tolist(),
            episode_order=positions[episode_id],
        )
    speaker_of: dict[tuple[str, str], str] = {}
    if centroids:
        if config.link_threshold is not None:
            link = config.link_threshold
        elif model in LINK_THRESHOLDS:
            link = LINK_THRESHOLDS[model]
        else:
            raise ConsistencyFailed(
                f"no default link threshold for embedding model {model!r}; set stages.consistency.link_threshold"
            )
        ids = link_speakers(centroids, link, config.separate_same_episode)
        speaker_of = {
            (c.episode_id, c.label): f"{drama_id}_spk{i:02d}" for c, i in zip(centroids, ids)
        }
    table["speaker_id"] = [
        speaker_of.get((e, s)) for e, s in zip(table["episode_id"], table["episode_speaker"])
    ]

    # the filter (eq. 4–5) over candidates
    table["consistency"] = np.nan
    table["cluster_size"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table["kept"] = False
    if candidate.any():
        threshold = config.threshold if config.threshold is not None else default_threshold(model)
        if config.scope == "drama":
            labels = table.loc[candidate, "speaker_id"].tolist()
        else:
            labels = (
                table.loc[candidate, "episode_id"] + "/" + table.loc[candidate, "episode_speaker"]
            ).tolist()
        scored = consistency_scores(embeddings[candidate], labels, threshold, config.keep_single)
        table.loc[candidate, "consistency"] = scored.consistency
        table.loc[candidate, "cluster_size"] = scored.cluster_size
        table.loc[candidate, "kept"] = scored.kept
        table.loc[candidate, "reason"] = scored.reason
    return typed(table, SEGMENT_COLUMNS)

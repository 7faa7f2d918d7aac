"""``fsclap index`` and ``fsclap search``: embed a corpus once, then find clips by description or example.

Text query  -> audio embeddings (text->audio): clips that sound like the description.
Audio query -> audio embeddings (audio->audio: similar clips) and caption embeddings
               (audio->text: the best-matching descriptions).
Optional pair re-ranking re-orders a text query's bi shortlist with the fusion module.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.audio import SOUNDFILE_SUFFIXES, load_audio, load_bounded
from fsclap.errors import FsclapError
from fsclap.log import get_logger
from fsclap.manifest import ATTRIBUTE_LEVELS, ClipManifest
from model.data import crop_bounds
from model.evaluation import check_manifest, checkpoint_fingerprint
from model.factory import load_checkpoint, resolve_checkpoint
from model.index import ClipIndex

log = get_logger("retrieval")
AUDIO_QUERY_SUFFIXES = SOUNDFILE_SUFFIXES | {
    ".mp3",
    ".m4a",
    ".mp4",
    ".aac",
    ".opus",
    ".webm",
    ".mkv",
}
MAX_QUERY_CHARS = 1000
RESULT_COLUMNS = (
    "clip_id",
    "caption",
    "audio_path",
    "start_s",
    "end_s",
    "speaker_id",
    *ATTRIBUTE_LEVELS,
)


def build_index(
    checkpoint,
    manifest_path,
    out_dir,
    settings=None,
    kind: str = "auto",
    allow_skip: bool = False,
    batch_size: int = 32,
    ef_search: int | None = None,
) -> tuple[ClipIndex, int, pd.DataFrame]:
    """Embed ``manifest_path`` with ``checkpoint`` into ``out_dir``; only clips not yet indexed are embedded.

    Returns the index, the number of clips added, and the manifest's rows that are not in the
    index (``clip_id``, ``audio_path``: what ``allow_skip`` left out).
    """
    given = ClipManifest.read(manifest_path, validate_levels=False)
    index, added = _embed_into(
        checkpoint, given, manifest_path, out_dir, settings, kind, allow_skip, batch_size, ef_search
    )
    indexed = set(index.clips["clip_id"].astype(str))
    left_out = given.frame.loc[~given.frame["clip_id"].isin(indexed), ["clip_id", "audio_path"]]
    return index, added, left_out.reset_index(drop=True)


def _embed_into(
    checkpoint,
    given: ClipManifest,
    manifest_path,
    out_dir,
    settings,
    kind: str,
    allow_skip: bool,
    batch_size: int,
    ef_search: int | None,
) -> tuple[ClipIndex, int]:
    """:func:`build_index`'s work: the index (built or extended) and the number of clips added."""
    folder = resolve_checkpoint(checkpoint)
    fingerprint = checkpoint_fingerprint(folder)
    manifest = check_manifest(given, allow_skip)
    out_dir = Path(out_dir)
    existing = ClipIndex.open(out_dir) if (out_dir / "index.json").is_file() else None
    if existing is not None:
        existing.check_model(fingerprint)
        known = set(existing.clips["clip_id"].astype(str))
        todo = manifest.frame[~manifest.frame["clip_id"].isin(known)].reset_index(drop=True)
        if todo.empty:
            return existing, 0
        manifest = ClipManifest(todo, manifest.source)
    device = settings.resolved_device() if settings is not None else "cpu"
    model = load_checkpoint(folder, device)
    emb = model.embed_manifest(
        manifest,
        batch_size=batch_size,
        workers=settings.workers if settings else 0,
        show_progress=settings.report_progress() if settings else False,
    )
    if emb.failures:
        listing = "; ".join(f"{cid}: {reason}" for cid, _, reason in emb.failures[:5])
        if not allow_skip:
            raise FsclapError(
                f"{len(emb.failures)} clip(s) could not be decoded: {listing} (pass --skip-missing)"
            )
        log.warning("left out %d undecodable clip(s): %s", len(emb.failures), listing)
    clips = manifest.frame.set_index("clip_id").loc[emb.clip_ids].reset_index()
    if existing is not None:
        return existing, existing.add(clips, emb.audio.numpy(), emb.text.numpy(), fingerprint)
    info = {
        "checkpoint": str(folder.resolve()),
        "backbone": model.config.backbone,
        "manifest": str(Path(manifest_path).absolute()),
    }
    index = ClipIndex.build(
        out_dir,
        clips,
        emb.audio.numpy(),
        emb.text.numpy(),
        fingerprint,
        info,
        kind=kind,
        ef_search=ef_search,
    )
    return index, len(clips)


@dataclass
class Result:
    rank: int
    score: float
    clip_id: str
    caption: str
    audio_path: str
    attributes: dict

    def to_json(self) -> dict:
        return asdict(self)


class Searcher:
    """An index plus the model that embedded it; answers text and audio queries."""

    def __init__(
        self, index_dir, checkpoint=None, device: str = "cpu", ef_search: int | None = None
    ):
        self.index = ClipIndex.open(index_dir, ef_search=ef_search)
        checkpoint = checkpoint or self.index.meta.get("model", {}).get("checkpoint")
        if not checkpoint:
            raise FsclapError(
                f"index {index_dir} does not record its checkpoint: pass --checkpoint"
            )
        try:
            folder = resolve_checkpoint(checkpoint)
        except FsclapError as exc:
            raise FsclapError(
                f"the index's checkpoint is unavailable ({exc}): pass --checkpoint"
            ) from None
        self.index.check_model(checkpoint_fingerprint(folder))
        self.model = load_checkpoint(folder, device)
        self._model_lock = (
            threading.Lock()
        )  # one forward pass at a time when a server shares the searcher

    def _rows(self, hits, scores=None) -> list[Result]:
        out = []
        for rank, hit in enumerate(hits, 1):
            row = self.index.clips.iloc[hit.row]
            attrs = {
                c: row[c]
                for c in ATTRIBUTE_LEVELS
                if c in row.index and isinstance(row[c], str) and row[c]
            }
            out.append(
                Result(
                    rank,
                    round(float(hit.score if scores is None else scores[rank - 1]), 4),
                    str(row["clip_id"]),
                    str(row["caption"]),
                    str(row["audio_path"]),
                    attrs,
                )
            )
        return out

    def search_text(
        self,
        query: str,
        k: int = 10,
        rerank: int = 0,
        filters: Mapping[str, str | Iterable[str]] | None = None,
    ) -> list[Result]:
        """Clips that sound like ``query``; ``filters`` (``{column: value(s)}``) restrict the ranked clips."""
        query = " ".join(str(query).split())
        if not query:
            raise FsclapError("empty query")
        if len(query) > MAX_QUERY_CHARS:
            raise FsclapError(
                f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}"
            )
        allowed = self.index.select(filters)
        with self._model_lock:
            vector = self.model.encode_text([query]).cpu().numpy()
        hits = self.index.search(vector, max(k, rerank), target="audio", allowed=allowed)[0]
        if rerank and self.model.has_pair_scoring and hits:
            waves = [self._clip_wave(h.row) for h in hits]
            with self._model_lock:
                pair = self.model.pair_scores(waves, [query] * len(waves)).cpu().numpy()
            order = np.argsort(-pair, kind="stable")
            hits = [hits[i] for i in order]
            return self._rows(hits[:k], pair[order][:k])
        return self._rows(hits[:k])

    def search_audio(
        self,
        path: str | Path,
        k: int = 10,
        filters: Mapping[str, str | Iterable[str]] | None = None,
        max_seconds: float = 600.0,
    ) -> tuple[list[Result], list[tuple[str, float]]]:
        """Similar clips (audio->audio) and best-matching captions (audio->text) for an audio file.

        ``filters`` restrict the similar clips (the captions are searched over the whole index).
        At most ``max_seconds`` of the file are decoded, at the model's rate (a query file is
        input nobody vetted).
        """
        wave = load_bounded(path, self.model.sample_rate, max_seconds)
        with self._model_lock:
            vector = self.model.encode_audio([self._crop(wave)]).cpu().numpy()
        similar = self._rows(
            self.index.search(vector, k, target="audio", allowed=self.index.select(filters))[0]
        )
        captions = [(c, round(s, 4)) for c, s, _ in self.index.search_captions(vector, k)]
        return similar, captions

    def similar_to_clip(
        self,
        clip_id: str,
        k: int = 10,
        filters: Mapping[str, str | Iterable[str]] | None = None,
    ) -> tuple[list[Result], list[tuple[str, float]]]:
        """ "More like this": clips whose audio is closest to an indexed clip's (the clip itself left out),
        and the descriptions that match it best. Uses the stored embedding, so nothing is decoded."""
        row = self.index.row_of(clip_id)
        if row is None:
            raise FsclapError(f"no clip {clip_id!r} in the index")
        vector = self.index.vector(row)[None, :]
        allowed = self.index.select(filters)
        if allowed is None:
            hits = [h for h in self.index.search(vector, k + 1, target="audio")[0] if h.row != row][
                :k
            ]
        else:
            allowed = allowed.copy()
            allowed[row] = False
            hits = self.index.search(vector, k, target="audio", allowed=allowed)[0]
        captions = [(c, round(s, 4)) for c, s, _ in self.index.search_captions(vector, k)]
        return self._rows(hits), captions

    def _clip_wave(self, row: int) -> np.ndarray:
        clip = self.index.clips.iloc[row]
        start = clip.get("start_s") if "start_s" in clip.index else None
        end = clip.get("end_s") if "end_s" in clip.index else None
        start = None if start is None or pd.isna(start) else float(start)
        end = None if end is None or pd.isna(end) else float(end)
        return self._crop(load_audio(clip["audio_path"], self.model.sample_rate, start, end)[0])

    def _crop(self, wave: np.ndarray) -> np.ndarray:
        """The deterministic centre crop the index's embeddings were made with (``model.data``)."""
        pre = self.model.backbone.audio_preprocessor
        a, b = crop_bounds(len(wave), int(round(pre.max_seconds * pre.sample_rate)), None)
        return wave[a:b]


def looks_like_audio_file(query: str) -> bool:
    path = Path(query).expanduser()
    return path.suffix.lower() in AUDIO_QUERY_SUFFIXES and path.is_file()

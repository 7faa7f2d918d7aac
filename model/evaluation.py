"""``fsclap eval``: the leak-free evaluation protocol of docs/design.md applied to a checkpoint.

1. Read the test manifest; missing audio files or empty captions are an error that lists them
   (numbers over a silently shrunken gallery cannot be compared).
2. Embed every clip with the ``bi`` path (each modality alone through the fusion transformer;
   deterministic crops), so a score depends only on its query and its candidate.
3. Rank the whole gallery both ways (``model.metrics``), report R@1/5/10 and mAP@10 in percent.
4. Optionally re-rank each query's bi top-K shortlist with ``pair`` scores (query and candidate
   fused jointly), reported separately.
5. Per-attribute breakdown when the manifest has gender/pitch/speed/energy/emotion columns.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fsclap.errors import FsclapError
from fsclap.io import write_json
from fsclap.log import get_logger
from fsclap.manifest import ClipManifest
from model.analysis import attribute_breakdown, breakdown_markdown, plot_embedding_map
from model.factory import WEIGHTS, load_checkpoint, resolve_checkpoint
from model.metrics import (
    BidirectionalResult,
    RankingResult,
    caption_keys,
    embedding_scores,
    evaluate_embeddings,
    rank_gallery,
)

log = get_logger("evaluation")


class ManifestProblems(FsclapError):
    """The manifest has rows that cannot be evaluated."""


def check_manifest(manifest: ClipManifest, allow_skip: bool = False) -> ClipManifest:
    """Refuse (or, with ``allow_skip``, drop with a warning) rows with missing audio or empty captions."""
    problems = manifest.problems()
    if problems.empty:
        return manifest
    listing = "; ".join(
        f"{r.clip_id}: {r.problem} ({r.audio_path})" for r in problems.head(5).itertuples()
    )
    more = f" and {len(problems) - 5} more" if len(problems) > 5 else ""
    if not allow_skip:
        raise ManifestProblems(
            f"{len(problems)} of {len(manifest)} manifest rows cannot be used: {listing}{more} "
            f"(fix them, or pass --skip-missing to leave them out)"
        )
    log.warning("leaving out %d manifest row(s): %s%s", len(problems), listing, more)
    keep = ~manifest.frame["clip_id"].isin(set(problems["clip_id"]))
    return ClipManifest(manifest.frame[keep].reset_index(drop=True), manifest.source)


def checkpoint_fingerprint(checkpoint: str | Path) -> str:
    """SHA-256 of the checkpoint's weights file: what an index remembers about its model."""
    digest = hashlib.sha256()
    with open(resolve_checkpoint(checkpoint) / WEIGHTS, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rerank_ranking(
    model,
    query_emb: torch.Tensor,
    gallery_emb: torch.Tensor,
    query_tokens: list,
    gallery_tokens: list,
    keys: np.ndarray,
    query_is_audio: bool,
    shortlist: int,
    chunk_size: int = 64,
) -> RankingResult:
    """Rank with each query's bi top-``shortlist`` re-ordered by pair scores.

    A shortlisted candidate's final score is ``10 + pair cosine`` (so the shortlist stays ahead of the
    rest, in pair order); the others keep their bi scores. Still leak-free: nothing depends on which
    candidate is the ground truth, on batch composition or on batch size.
    """
    bi_rows = embedding_scores(query_emb, gallery_emb)
    k = min(shortlist, gallery_emb.shape[0])

    def rows(start: int, stop: int) -> torch.Tensor:
        scores = bi_rows(start, stop).double()
        short = scores.topk(k, dim=1).indices
        qi = torch.arange(start, stop)[:, None].expand_as(short).reshape(-1).tolist()
        gi = short.reshape(-1).tolist()
        q_feats = [query_tokens[i] for i in qi]
        g_feats = [gallery_tokens[j] for j in gi]
        audio, text = (q_feats, g_feats) if query_is_audio else (g_feats, q_feats)
        with torch.no_grad():
            pair = model.pair_scores(audio, text).double().cpu().view_as(short)
        return scores.scatter(1, short, 10.0 + pair)

    return rank_gallery(rows, keys, keys, chunk_size=chunk_size)


@dataclass
class EvalReport:
    n: int
    bi: BidirectionalResult
    rerank: BidirectionalResult | None = None
    rerank_k: int = 0
    attributes: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def contract_json(self) -> dict:
        """Exactly the ``--json`` contract of docs/design.md."""
        return {"n": self.n, "a2t": self.bi.a2t.summary(), "t2a": self.bi.t2a.summary()}

    def agreement(self, direction: str = "t2a") -> dict[str, float]:
        """Per attribute, the share (percent) of queries whose top-1 result has the query's level."""
        return {
            attribute: entry[direction]["agreement@1"]
            for attribute, entry in self.attributes.items()
        }

    def details_json(self) -> dict:
        out = {**self.contract_json(), "scoring": "bi", "info": self.info}
        if self.rerank is not None:
            out["pair_rerank"] = {
                "shortlist": self.rerank_k,
                "a2t": self.rerank.a2t.summary(),
                "t2a": self.rerank.t2a.summary(),
            }
        if self.attributes:
            out["attributes"] = self.attributes
        return out

    def table(self) -> str:
        """The metrics as the paper prints them (percent, one decimal)."""
        lines = [
            f"N = {self.n} clips, full gallery, leak-free",
            "",
            "| scoring | direction | R@1 | R@5 | R@10 | mAP@10 |",
            "|---|---|---|---|---|---|",
        ]
        rows = [("bi", self.bi)] + (
            [(f"pair re-rank top-{self.rerank_k}", self.rerank)] if self.rerank else []
        )
        for name, res in rows:
            for direction, ranking in (("audio→text", res.a2t), ("text→audio", res.t2a)):
                m = ranking.summary()
                lines.append(
                    f"| {name} | {direction} | {m['R@1']:.1f} | {m['R@5']:.1f} | {m['R@10']:.1f} | {m['mAP@10']:.1f} |"
                )
        if self.attributes:
            lines += [
                "",
                "Per attribute (share of top-1 results with the query's level):",
                "",
                breakdown_markdown(self.attributes),
            ]
        return "\n".join(lines)


def evaluate_model(
    model,
    manifest: ClipManifest,
    rerank_k: int = 0,
    batch_size: int = 32,
    workers: int = 0,
    allow_skip: bool = False,
    show_progress: bool = True,
) -> tuple[EvalReport, object]:
    """Evaluate a loaded model on a manifest; returns the report and the embeddings."""
    manifest = check_manifest(manifest, allow_skip)
    want_tokens = bool(rerank_k) and model.has_pair_scoring
    if rerank_k and not model.has_pair_scoring:
        raise FsclapError(
            "this checkpoint has no pair scoring (trained without fusion or with pair_loss=none): "
            "drop --rerank"
        )
    emb = model.embed_manifest(
        manifest,
        batch_size=batch_size,
        workers=workers,
        keep_tokens=want_tokens,
        show_progress=show_progress,
    )
    if emb.failures:
        listing = "; ".join(f"{cid}: {reason}" for cid, _, reason in emb.failures[:5])
        if not allow_skip:
            raise ManifestProblems(
                f"{len(emb.failures)} clip(s) could not be decoded: {listing} "
                f"(pass --skip-missing to leave them out)"
            )
        log.warning("left out %d undecodable clip(s): %s", len(emb.failures), listing)
    if len(emb.clip_ids) < 2:
        raise FsclapError(f"need at least 2 evaluable clips, got {len(emb.clip_ids)}")

    bi = evaluate_embeddings(emb.audio, emb.text, emb.captions)
    report = EvalReport(n=len(emb.clip_ids), bi=bi)
    if want_tokens:
        keys = caption_keys(emb.captions)
        a2t = rerank_ranking(
            model, emb.audio, emb.text, emb.audio_tokens, emb.text_tokens, keys, True, rerank_k
        )
        t2a = rerank_ranking(
            model, emb.text, emb.audio, emb.text_tokens, emb.audio_tokens, keys, False, rerank_k
        )
        report.rerank, report.rerank_k = BidirectionalResult(a2t, t2a, n=report.n), rerank_k
    frame = manifest.frame.set_index("clip_id").loc[emb.clip_ids].reset_index()
    report.attributes = attribute_breakdown(bi, frame)
    return report, emb


def evaluate_checkpoint(
    checkpoint: str | Path,
    manifest_path: str | Path,
    settings=None,
    json_out: str | Path | None = None,
    rerank_k: int = 0,
    plot: str | Path | None = None,
    allow_skip: bool = False,
    batch_size: int = 32,
) -> EvalReport:
    """What ``fsclap eval`` runs: load, evaluate, write JSON (+ details and an embedding map)."""
    device = settings.resolved_device() if settings is not None else "cpu"
    workers = settings.workers if settings is not None else 0
    show = settings.report_progress() if settings is not None else False
    folder = resolve_checkpoint(checkpoint)
    manifest = ClipManifest.read(manifest_path, validate_levels=False)
    start = time.perf_counter()
    model = load_checkpoint(folder, device)
    report, emb = evaluate_model(
        model,
        manifest,
        rerank_k=rerank_k,
        batch_size=batch_size,
        workers=workers,
        allow_skip=allow_skip,
        show_progress=show,
    )
    report.info = {
        "checkpoint": str(folder),
        "manifest": str(manifest_path),
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 2),
        "backbone": model.config.backbone,
        # rows --skip-missing left out (missing audio or caption, undecodable audio)
        "left_out": sorted(set(manifest.frame["clip_id"]) - set(emb.clip_ids)),
    }
    if json_out is not None:
        json_out = Path(json_out)
        write_json(json_out, report.contract_json())
        write_json(json_out.with_name(json_out.stem + ".details.json"), report.details_json())
    if plot is not None:
        frame = manifest.frame.set_index("clip_id").loc[emb.clip_ids]
        labels = None
        for column in (
            "emotion",
            "gender",
            "pitch",
            "speed",
            "energy",
        ):  # the first that tells clips apart
            values = frame[column].fillna("").astype(str) if column in frame.columns else None
            if values is not None and values[values != ""].nunique() >= 2:
                labels = values.replace("", "?").map(lambda v, c=column: f"{c}={v}").to_numpy()
                break
        plot_embedding_map(
            emb.audio.numpy(),
            emb.text.numpy(),
            plot,
            labels=labels,
            title=f"{Path(folder).name}: audio (o) and text (x) embeddings",
        )
    return report

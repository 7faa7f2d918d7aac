"""What users ask after the headline numbers: which attributes the model gets wrong, and how the
two modalities sit in the embedding space (the paper's Fig. 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.io import atomic_path
from fsclap.log import get_logger
from fsclap.manifest import ATTRIBUTE_LEVELS
from model.metrics import BidirectionalResult

log = get_logger("model.analysis")


def attribute_breakdown(result: BidirectionalResult, frame: pd.DataFrame) -> dict:
    """Per attribute (gender/pitch/speed/energy/emotion columns present in ``frame``):

    - ``agreement@1``: share of queries whose top-1 result has the query clip's level of the
      attribute (for a2t the top caption's clip, for t2a the top audio). Low agreement on one
      attribute while others are high shows what the model does not hear or read.
    - per level: R@1 / R@10 / mAP@10 over the queries of that level, and the query count.

    Rows of ``frame`` are the evaluated clips in the order they were embedded.
    """
    out: dict = {}
    for column in ATTRIBUTE_LEVELS:
        if column not in frame.columns:
            continue
        values = frame[column].fillna("").astype(str).str.strip().str.lower().to_numpy()
        vocabulary = [level for level in ATTRIBUTE_LEVELS[column] if level != "unknown"]
        outside = sorted(set(values) - set(vocabulary) - {"", "unknown", "nan"})
        if outside:  # a label from elsewhere ("robot") must not become a level of the table
            log.warning(
                "%s: %d clip(s) with values outside %s left out of the breakdown (e.g. %s)",
                column,
                int(np.isin(values, outside).sum()),
                vocabulary,
                ", ".join(map(repr, outside[:3])),
            )
        values = np.where(np.isin(values, vocabulary), values, "")
        known = values != ""
        if not known.any():
            continue
        entry: dict = {}
        for direction, ranking in (("a2t", result.a2t), ("t2a", result.t2a)):
            top1 = ranking.top[:, 0]
            agree = (values[top1] == values) & known & (values[top1] != "")
            entry[direction] = {"agreement@1": round(100.0 * agree[known].mean(), 1), "levels": {}}
            for level in sorted(set(values[known])):
                mask = values == level
                entry[direction]["levels"][level] = {
                    "n": int(mask.sum()),
                    **ranking.summary(mask=mask),
                }
        out[column] = entry
    return out


def breakdown_markdown(breakdown: dict) -> str:
    """A compact Markdown table of the agreement@1 per attribute and direction."""
    lines = [
        "| attribute | a2t agreement@1 | t2a agreement@1 | levels (t2a R@1) |",
        "|---|---|---|---|",
    ]
    for column, entry in breakdown.items():
        levels = ", ".join(f"{lvl} {m['R@1']}" for lvl, m in entry["t2a"]["levels"].items())
        lines.append(
            f"| {column} | {entry['a2t']['agreement@1']} | {entry['t2a']['agreement@1']} | {levels} |"
        )
    return "\n".join(lines)


def plot_embedding_map(
    audio_emb: np.ndarray,
    text_emb: np.ndarray,
    out_png: str | Path,
    labels: np.ndarray | None = None,
    title: str = "FS-CLAP embeddings",
    method: str = "umap",
    seed: int = 0,
    max_points: int = 3000,
) -> Path:
    """UMAP (or t-SNE) of audio and text embeddings in one 2-D map, as in the paper's Fig. 2.

    Audio points are dots, text points crosses; colours follow ``labels`` (e.g. emotion or gender)
    when given. At most ``max_points`` clips are drawn (a seeded subset) to keep it fast.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio_emb, text_emb = np.asarray(audio_emb, np.float32), np.asarray(text_emb, np.float32)
    n = len(audio_emb)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(n, size=min(n, max_points), replace=False))
    both = np.concatenate([audio_emb[keep], text_emb[keep]])
    if method == "umap" and len(both) >= 10:
        import umap

        xy = umap.UMAP(
            n_neighbors=min(15, len(both) - 1),
            min_dist=0.1,
            metric="cosine",
            random_state=seed,
            n_jobs=1,
        ).fit_transform(both)
    else:
        from sklearn.manifold import TSNE

        xy = TSNE(
            n_components=2,
            perplexity=min(30.0, max(2.0, (len(both) - 1) / 3)),
            random_state=seed,
            init="pca",
        ).fit_transform(both)
    k = len(keep)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    lab = None if labels is None else np.asarray(labels)[keep]
    groups = [None] if lab is None else sorted(set(lab.tolist()))
    cmap = plt.get_cmap("tab10")
    for gi, group in enumerate(groups):
        sel = np.ones(k, bool) if group is None else lab == group
        colour = cmap(gi % 10)
        name = "" if group is None else f" {group}"
        ax.scatter(
            xy[:k][sel, 0],
            xy[:k][sel, 1],
            s=8,
            color=colour,
            marker="o",
            alpha=0.7,
            label=f"audio{name}",
        )
        ax.scatter(
            xy[k:][sel, 0],
            xy[k:][sel, 1],
            s=14,
            color=colour,
            marker="x",
            alpha=0.7,
            label=f"text{name}",
        )
    ax.set_title(f"{title} ({method.upper()}, {k} clips)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5, ncol=2, loc="best")
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out_png

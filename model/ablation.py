"""The paper's Table 3: train and evaluate each FU/SE/HN combination (and the plain CLAP baseline)
on one corpus at the same budget, and write a Markdown table like the paper's.

Each row is one training run under ``OUT/<row>/`` (resumable: re-running continues unfinished rows
and re-uses finished ones) evaluated with the leak-free protocol on the test manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fsclap.io import write_json, write_text
from fsclap.layout import RunDir
from fsclap.log import get_logger
from fsclap.manifest import ClipManifest
from model.evaluation import checkpoint_fingerprint, evaluate_model
from model.factory import load_checkpoint
from model.train_config import load_train_config
from model.training import train

log = get_logger("ablation")


@dataclass(frozen=True)
class AblationRow:
    fusion: bool
    separation: bool
    hn_loss: bool

    @property
    def name(self) -> str:
        return f"fu{self.fusion:d}-se{self.separation:d}-hn{self.hn_loss:d}"

    @property
    def overrides(self) -> list[str]:
        return [
            f"fusion={str(self.fusion).lower()}",
            f"separation={str(self.separation).lower()}",
            f"hn_loss={str(self.hn_loss).lower()}",
        ]


# The rows of the paper's Table 3, in its order; the first is the plain CLAP baseline.
TABLE3_ROWS = (
    AblationRow(False, False, False),
    AblationRow(True, False, False),
    AblationRow(False, True, False),
    AblationRow(False, False, True),
    AblationRow(True, True, False),
    AblationRow(True, True, True),
)


def _mark(flag: bool) -> str:
    return "✓" if flag else "×"


def run_ablation(
    train_manifest,
    val_manifest,
    test_manifest,
    out_dir,
    overrides: Sequence[str] = (),
    config_file=None,
    settings=None,
    rows: Sequence[AblationRow] = TABLE3_ROWS,
) -> str:
    """Train + evaluate every row; returns (and writes ``OUT/table3.md``) the Markdown table."""
    out_dir = Path(out_dir)
    test = ClipManifest.read(test_manifest, validate_levels=False)
    results = {}
    for row in rows:
        run_dir = out_dir / row.name
        cfg = load_train_config(config_file, [*overrides, *row.overrides])
        log.info("ablation row %s: training in %s", row.name, run_dir)
        result = train(train_manifest, val_manifest, run_dir, cfg, settings=settings)
        if not result.finished:
            raise RuntimeError(f"row {row.name} stopped before finishing; re-run to resume")
        cached = RunDir(run_dir).test_metrics
        fingerprint = checkpoint_fingerprint(run_dir)
        if cached.is_file() and json.loads(cached.read_text()).get("fingerprint") == fingerprint:
            results[row] = json.loads(cached.read_text())
            continue
        model = load_checkpoint(run_dir, settings.resolved_device() if settings else "cpu")
        report, _ = evaluate_model(model, test, show_progress=False)
        results[row] = {
            **report.contract_json(),
            "fingerprint": fingerprint,
            "best_epoch": result.best_epoch,
        }
        write_json(cached, results[row])
    table = ablation_markdown(results, n=next(iter(results.values()))["n"], overrides=overrides)
    write_text(out_dir / "table3.md", table + "\n")
    return table


def ablation_markdown(results: dict, n: int, overrides: Sequence[str] = ()) -> str:
    """Columns as in the paper's Table 3: mAP@10 and R@1 per direction; best value per column in bold."""
    columns = [("a2t", "mAP@10"), ("a2t", "R@1"), ("t2a", "mAP@10"), ("t2a", "R@1")]
    best = {c: max(r[c[0]][c[1]] for r in results.values()) for c in columns}
    lines = [
        f"Ablation on N = {n} test clips (leak-free, full gallery){'; ' + ', '.join(overrides) if overrides else ''}",
        "",
        "| FU | SE | HN | A→T mAP@10 | A→T R@1 | T→A mAP@10 | T→A R@1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for row, metrics in results.items():
        cells = []
        for c in columns:
            value = metrics[c[0]][c[1]]
            cells.append(f"**{value:.1f}**" if value == best[c] else f"{value:.1f}")
        lines.append(
            f"| {_mark(row.fusion)} | {_mark(row.separation)} | {_mark(row.hn_loss)} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)

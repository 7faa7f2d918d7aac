"""``fsclap train``, ``fsclap eval`` and ``fsclap ablation``: train and evaluate FS-CLAP."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import command_settings, finish
from model.ablation import run_ablation
from model.evaluation import evaluate_checkpoint
from model.train_config import load_train_config
from model.training import train as run_training

app = typer.Typer()


@app.command("train")
def train(
    ctx: typer.Context,
    train_manifest: Path = typer.Option(..., "--train", help="Training clip manifest."),
    val_manifest: Path = typer.Option(..., "--val", help="Validation clip manifest."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, metrics, plots)."),
    config: Path | None = typer.Option(
        None, "--config", help="Training config (JSON/YAML), or a preset: paper, auto."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Training override key=value (repeatable)."
    ),
) -> None:
    """Train FS-CLAP (or an ablation / the CLAP baseline) on a clip manifest.

    By default (preset auto) batch, epochs and warm-up are derived from the number of training clips
    (about 400 optimizer steps, at least 10 epochs; the log says what was chosen). `--config paper`
    (or `--set preset=paper`) gives the paper's settings exactly: batch 96 x 2 accumulation, 10 epochs,
    1 warm-up epoch, lr 4e-5 backbone / 1e-4 fusion-separation. Explicit `--set` values win.
    Re-running the same command resumes a killed run.
    """
    settings = command_settings(ctx)
    cfg = load_train_config(config, set_ or [])
    result = run_training(train_manifest, val_manifest, out, cfg, settings=settings)
    if result.skipped:
        typer.echo(
            f"skipped {result.skipped} manifest row(s) (missing/corrupt audio, empty caption): {out / 'skipped.csv'}"
        )
    if not result.finished:
        typer.echo(
            f"stopped after step {result.steps} (epoch {result.epochs_done}/{result.schedule.epochs}); "
            f"run the same command to resume"
        )
    schedule = result.schedule
    typer.echo(
        f"schedule: batch {schedule.batch_size} x {schedule.grad_accum} accumulation"
        f"{f' x {schedule.world} processes' if schedule.world > 1 else ''}, {schedule.epochs} epochs, "
        f"{schedule.total_steps} optimizer steps (preset {schedule.preset})"
    )
    if result.best_epoch is not None:
        m = result.best_metrics
        typer.echo(
            f"best epoch {result.best_epoch} (N={m['n']} val clips): "
            f"a2t R@1 {m['a2t_R@1']:.1f} R@5 {m['a2t_R@5']:.1f} mAP@10 {m['a2t_mAP@10']:.1f} | "
            f"t2a R@1 {m['t2a_R@1']:.1f} R@5 {m['t2a_R@5']:.1f} mAP@10 {m['t2a_mAP@10']:.1f}"
        )
        typer.echo(
            f"checkpoint: {out / 'checkpoints' / 'best'}  metrics: {out / 'metrics.csv'}  plot: {out / 'curves.png'}"
        )


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run directory or checkpoint file."),
    manifest: Path = typer.Option(..., "--manifest", help="Test clip manifest."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write metrics JSON here (+ OUT.details.json)."
    ),
    rerank: int = typer.Option(
        0, "--rerank", min=0, help="Also re-rank each bi top-K shortlist with pair scores."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Save a UMAP map of audio and text embeddings (PNG)."
    ),
    skip_missing: bool = typer.Option(
        False, "--skip-missing", help="Leave out rows with missing audio/captions."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
) -> None:
    """Leak-free full-gallery retrieval metrics (R@1/5/10, mAP@10, both directions)."""
    report = evaluate_checkpoint(
        checkpoint,
        manifest,
        command_settings(ctx),
        json_out=json_out,
        rerank_k=rerank,
        plot=plot,
        allow_skip=skip_missing,
        batch_size=batch_size,
    )
    typer.echo(report.table())
    if json_out:
        typer.echo(f"metrics: {json_out}")
    if plot:
        typer.echo(f"embedding map: {plot}")
    left_out = report.info.get("left_out", [])
    where = (
        f"info.left_out in {json_out.with_name(json_out.stem + '.details.json')}"
        if json_out
        else "the warnings above"
    )
    finish(len(left_out), where)


@app.command("ablation")
def ablation(
    ctx: typer.Context,
    train_manifest: Path = typer.Option(..., "--train", help="Training clip manifest."),
    val_manifest: Path = typer.Option(
        ..., "--val", help="Validation clip manifest (best-checkpoint selection)."
    ),
    test_manifest: Path = typer.Option(
        ..., "--test", help="Test clip manifest (reported numbers)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for one run per row and table3.md."),
    config: Path | None = typer.Option(
        None, "--config", help="Training config shared by every row."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Training override for every row (repeatable)."
    ),
) -> None:
    """Train and evaluate the paper's Table 3 rows (FU/SE/HN on/off, CLAP baseline) at equal budget."""
    table = run_ablation(
        train_manifest,
        val_manifest,
        test_manifest,
        out,
        overrides=set_ or [],
        config_file=config,
        settings=command_settings(ctx),
    )
    typer.echo(table)
    typer.echo(f"\ntable: {out / 'table3.md'}")

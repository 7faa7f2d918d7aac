"""``train-fsclap``: train FS-CLAP on a published dataset version (a thin wrapper over ``model/``).

The training itself is one task tagged ``fsclap-train`` and ``gpu`` (tag concurrency limits keep
it within the worker's GPUs, together with the corpus builder's GPU stages). With
``nproc_per_node > 1`` the task launches ``torchrun`` on the worker (data-parallel training over
that many GPUs, the trainer's DDP path) and reads the outcome from the run directory. Re-running
the same run resumes it exactly; a finished run returns at once. Artifacts: a Markdown summary,
the per-epoch metrics table and the training curves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import artifacts
from flows.params import (
    TrainParams,
    check_worker_paths,
    manifests_or_splits,
    run_dir_or_default,
    validated,
)
from flows.runtime import ensure_library_logging, run_name
from fsclap.config import Profile
from fsclap.errors import FsclapError
from fsclap.layout import RunDir
from fsclap.log import get_logger
from model.train_config import load_train_config
from model.training import TrainResult, train

log = get_logger("flows.train")
METRIC_KEYS = ("R@1", "R@5", "R@10", "mAP@10")


def torchrun_command(
    params: TrainParams, train_manifest: Path, val_manifest: Path, run_dir: Path
) -> list[str]:
    """``fsclap train`` under torchrun on this machine: one process per GPU (the trainer reads
    RANK/LOCAL_RANK/WORLD_SIZE and wraps the model in DDP)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={params.nproc_per_node}",
        "-m",
        "fsclap.cli",
    ]
    if params.config_file is not None:
        command += ["--config", str(params.config_file)]
    settings = list(params.overrides)
    if params.data_root is not None:
        settings.append(f"data_root={params.data_root}")
    if params.profile is not None:
        settings.append(f"profile={params.profile}")
    command += [f"--set={s}" for s in settings]
    command += [
        "train",
        "--train",
        str(train_manifest),
        "--val",
        str(val_manifest),
        "--out",
        str(run_dir),
    ]
    if params.train_config is not None:
        command += ["--config", str(params.train_config)]
    command += [f"--set={s}" for s in params.train_overrides]
    return command


@task(
    name="train",
    tags=["fsclap", "fsclap-train", "gpu"],
    cache_policy=NO_CACHE,
    persist_result=False,
)
def train_model(
    params: TrainParams, train_manifest: Path, val_manifest: Path, run_dir: Path, config, settings
) -> TrainResult:
    ensure_library_logging()
    if params.nproc_per_node > 1:
        command = torchrun_command(params, train_manifest, val_manifest, run_dir)
        get_run_logger().info("data-parallel training: %s", " ".join(command))
        done = subprocess.run(command, stdout=sys.stdout, stderr=sys.stderr)
        if done.returncode != 0:
            raise FsclapError(
                f"torchrun training exited with status {done.returncode} (see the log above)"
            )
        return TrainResult.from_run_dir(run_dir)
    return train(train_manifest, val_manifest, run_dir, config, settings=settings)


@flow(
    name="train-fsclap",
    flow_run_name=run_name("train-fsclap"),
    description="Train FS-CLAP (or an ablation / the CLAP baseline) on a published dataset "
    "version; resumable.",
    persist_result=False,
)
def train_fsclap(
    *,
    dataset: Path | None = None,
    train_manifest: Path | None = None,
    val_manifest: Path | None = None,
    run_dir: Path | None = None,
    train_config: Path | None = None,
    train_overrides: tuple[str, ...] = (),
    nproc_per_node: int = 1,
    data_root: Path | None = None,
    profile: Profile | None = None,
    config_file: Path | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Train FS-CLAP on a published dataset version (or explicit manifests); resumable.

    Args:
        dataset: A published dataset folder DATA_ROOT/datasets/VERSION on the worker (default:
            the one named by DATA_ROOT/datasets/LATEST).
        train_manifest: Training clip manifest (instead of a dataset; needs val_manifest and
            run_dir).
        val_manifest: Validation clip manifest (instead of a dataset).
        run_dir: Run directory (default: DATA_ROOT/runs/fsclap-VERSION); re-running the same
            run resumes it.
        train_config: Training config JSON/YAML, or a preset name (paper, auto); default: a
            schedule derived from the corpus size.
        train_overrides: Training overrides key=value, as `fsclap train --set` (epochs,
            batch_size, backbone, fusion, ...).
        nproc_per_node: Processes (GPUs) for data-parallel training (1-64); more than 1
            launches torchrun on this worker.
        data_root: Data root on the worker (default: the worker's FSCLAP_DATA_ROOT / settings).
        profile: offline: models shipped in wheels; paper: the paper's models from
            FSCLAP_MODELS (default: settings).
        config_file: fsclap settings YAML on the worker (default: FSCLAP_CONFIG).
        overrides: Settings overrides key=value, as `fsclap --set` (e.g. device=cuda,
            stages.separate.method=repet).
    """
    params = validated(TrainParams, locals())  # first: only the arguments are local yet
    ensure_library_logging()

    settings = params.settings()
    check_worker_paths(params, settings)
    root = Path(settings.data_root).expanduser()
    explicit = (
        None if params.train_manifest is None else [params.train_manifest, params.val_manifest]
    )
    (train_path, val_path), used_dataset = manifests_or_splits(
        explicit, params.dataset, root, ["train", "val"]
    )
    run = run_dir_or_default(
        params.run_dir, used_dataset, root, "give run_dir when training on explicit manifests"
    )
    # bad keys fail before any work
    config = load_train_config(params.train_config, params.train_overrides)
    get_run_logger().info(
        "training %s on %s (val %s) -> %s", config.backbone, train_path, val_path, run
    )
    outcome = train_model(params, Path(train_path), Path(val_path), Path(run), config, settings)
    report_training(outcome, config, train_path, val_path, used_dataset)
    return outcome.to_json()


def metric_rows(metrics: dict[str, float], prefix: str = "") -> list[dict[str, Any]]:
    """``{"a2t_R@1": ..}`` -> one row per direction with the paper's columns."""
    rows = []
    for direction, name in (("a2t", "audio→text"), ("t2a", "text→audio")):
        row: dict[str, Any] = {"direction": name}
        for key in METRIC_KEYS:
            value = metrics.get(f"{prefix}{direction}_{key}")
            row[key] = round(float(value), 1) if value is not None else None
        rows.append(row)
    return rows


def report_training(outcome: TrainResult, config, train_manifest, val_manifest, dataset) -> None:
    import pandas as pd

    run_dir = outcome.run_dir
    run = RunDir(run_dir)
    m = outcome.best_metrics
    schedule = outcome.schedule  # the batch actually used (derived or given)
    lines = [
        "# train-fsclap",
        "",
        f"Run `{run_dir}` · backbone `{config.backbone}` · fusion {config.fusion} · separation {config.separation} · "
        f"HN loss {config.hn_loss} · {outcome.world_size} process(es)",
        "",
        f"- data: {f'dataset `{dataset}`' if dataset is not None else ''} train `{train_manifest}`, val `{val_manifest}`",
        f"- epochs: {outcome.epochs_done}/{outcome.epochs} ({'finished' if outcome.finished else 'stopped early; run again to resume'}),"
        f" batch {getattr(schedule, 'batch_size', None)} x {getattr(schedule, 'grad_accum', None)} accumulation (preset {config.preset}), lr {config.lr_backbone:g} backbone / "
        f"{config.lr_fusion:g} fusion-separation",
        f"- best epoch: **{outcome.best_epoch}** on {m.get('n', '?')} validation clips "
        f"(checkpoint `{run.best}`)",
        "",
        artifacts.markdown_table(metric_rows(m)),
        "",
        f"Curves: `{run.curves}` (image artifact `train-fsclap-curves`); per-epoch "
        f"metrics: `{run.metrics_csv}`.",
    ]
    artifacts.markdown(
        "train-fsclap-summary", "\n".join(lines), "Training: best epoch and validation metrics"
    )
    metrics_csv = run.metrics_csv
    if metrics_csv.is_file():
        rows = pd.read_csv(metrics_csv).to_dict("records")
        if rows:
            artifacts.table(
                "train-fsclap-metrics",
                rows,
                f"Per-epoch loss and validation metrics ({metrics_csv})",
            )
    artifacts.images("train-fsclap", [run.curves], "Training curves")

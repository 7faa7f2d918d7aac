"""``evaluate-fsclap``: leak-free full-gallery retrieval metrics of a checkpoint (a thin wrapper
over :func:`model.evaluation.evaluate_checkpoint`).

Writes ``metrics.json`` (the ``fsclap eval --json`` contract) with its details file and the
embedding map beside it; artifacts: the metrics as the paper prints them (Markdown), a table of
the same numbers, and the embedding map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import artifacts
from flows.params import (
    EvaluateParams,
    SplitName,
    check_worker_paths,
    manifests_or_splits,
    run_dir_or_default,
    validated,
)
from flows.runtime import ensure_library_logging, run_name
from fsclap.config import Profile
from fsclap.errors import FsclapError
from fsclap.layout import RunDir
from model.evaluation import evaluate_checkpoint


@task(name="evaluate", tags=["fsclap", "gpu"], cache_policy=NO_CACHE, persist_result=False)
def evaluate_model(
    params: EvaluateParams, checkpoint: Path, manifest: Path, out_dir: Path, settings
):
    ensure_library_logging()

    return evaluate_checkpoint(
        checkpoint,
        manifest,
        settings,
        json_out=out_dir / "metrics.json",
        rerank_k=params.rerank,
        plot=out_dir / "embeddings.png" if params.plot else None,
        allow_skip=params.skip_missing,
        batch_size=params.batch_size,
    )


@flow(
    name="evaluate-fsclap",
    flow_run_name=run_name("evaluate-fsclap"),
    description="Leak-free full-gallery retrieval metrics (R@1/5/10, mAP@10, both "
    "directions) of a checkpoint on a dataset split or manifest.",
    persist_result=False,
)
def evaluate_fsclap(
    *,
    checkpoint: Path | None = None,
    dataset: Path | None = None,
    split: SplitName = "test",
    manifest: Path | None = None,
    out_dir: Path | None = None,
    rerank: int = 0,
    plot: bool = True,
    skip_missing: bool = False,
    batch_size: int = 32,
    data_root: Path | None = None,
    profile: Profile | None = None,
    config_file: Path | None = None,
    overrides: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Leak-free full-gallery retrieval metrics of a checkpoint on a dataset split or manifest.

    Args:
        checkpoint: Run directory or checkpoint file on the worker (default: the run
            train-fsclap makes for the dataset).
        dataset: Published dataset folder (default: DATA_ROOT/datasets/LATEST).
        split: Which split of the dataset to evaluate on.
        manifest: A clip manifest to evaluate on (instead of a dataset split; needs a
            checkpoint).
        out_dir: Where metrics.json and the plot go (default: RUN/eval/SPLIT).
        rerank: Also re-rank each bi top-K shortlist with pair scores (K; 0: off).
        plot: Save a UMAP map of the audio and text embeddings.
        skip_missing: Leave out rows with missing audio or captions.
        batch_size: Clips per embedding batch (speed and memory only, not the metrics).
        data_root: Data root on the worker (default: the worker's FSCLAP_DATA_ROOT / settings).
        profile: offline: models shipped in wheels; paper: the paper's models from
            FSCLAP_MODELS (default: settings).
        config_file: fsclap settings YAML on the worker (default: FSCLAP_CONFIG).
        overrides: Settings overrides key=value, as `fsclap --set` (e.g. device=cuda,
            stages.separate.method=repet).
    """
    params = validated(EvaluateParams, locals())  # first: only the arguments are local yet
    ensure_library_logging()
    settings = params.settings()
    check_worker_paths(params, settings)
    root = Path(settings.data_root).expanduser()
    explicit = None if params.manifest is None else [params.manifest]
    (used_manifest,), used_dataset = manifests_or_splits(
        explicit, params.dataset, root, [params.split]
    )
    label = params.split if used_dataset is not None else used_manifest.stem
    used_checkpoint = Path(
        run_dir_or_default(
            params.checkpoint,
            used_dataset,
            root,
            "give a checkpoint when evaluating an explicit manifest",
        )
    )
    if not used_checkpoint.exists():
        raise FsclapError(
            f"checkpoint not found: {used_checkpoint} (train it with train-fsclap first)"
        )
    run_dir = used_checkpoint if used_checkpoint.is_dir() else used_checkpoint.parent
    out = Path(params.out_dir) if params.out_dir is not None else RunDir(run_dir).eval_dir(label)
    get_run_logger().info("evaluating %s on %s -> %s", used_checkpoint, used_manifest, out)
    report = evaluate_model(params, used_checkpoint, Path(used_manifest), out, settings)
    report_evaluation(report, used_checkpoint, used_manifest, out, params)
    return {
        **report.contract_json(),
        "table": report.table(),
        "metrics": str(out / "metrics.json"),
        "plot": str(out / "embeddings.png") if params.plot else None,
        "checkpoint": str(used_checkpoint),
        "manifest": str(used_manifest),
    }


def report_evaluation(report, checkpoint, manifest, out_dir: Path, params: EvaluateParams) -> None:
    plot = out_dir / "embeddings.png"
    lines = [
        "# evaluate-fsclap",
        "",
        f"Checkpoint `{checkpoint}` on `{manifest}`",
        "",
        report.table(),
        "",
        f"Metrics: `{out_dir / 'metrics.json'}` (details: `{out_dir / 'metrics.details.json'}`)",
    ]
    if params.plot:
        lines.append(f"Embedding map: `{plot}` (image artifact `evaluate-fsclap-embeddings`)")
    artifacts.markdown(
        "evaluate-fsclap-report",
        "\n".join(lines),
        "Retrieval metrics (percent, full gallery, leak-free)",
    )
    rows = []
    results = [("bi", report.bi)] + (
        [(f"pair re-rank top-{report.rerank_k}", report.rerank)] if report.rerank else []
    )
    for scoring, result in results:
        for direction, ranking in (("audio→text", result.a2t), ("text→audio", result.t2a)):
            rows.append(
                {
                    "scoring": scoring,
                    "direction": direction,
                    "N": report.n,
                    **{k: round(float(v), 1) for k, v in ranking.summary().items()},
                }
            )
    artifacts.table(
        "evaluate-fsclap-metrics", rows, f"Retrieval metrics of {checkpoint} on {manifest}"
    )
    if params.plot:
        artifacts.images("evaluate-fsclap", [plot], "Audio and text embeddings")

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
from flows.params import EvaluateParams, check_worker_paths, manifests_or_splits, run_dir_or_default
from flows.runtime import ensure_library_logging, run_name
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
        rerank_k=params.rerank_k,
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
def evaluate_fsclap(params: EvaluateParams = EvaluateParams()) -> dict[str, Any]:
    ensure_library_logging()
    settings = params.settings()
    check_worker_paths(params, settings)
    data_root = Path(settings.data_root).expanduser()
    explicit = None if params.manifest is None else [params.manifest]
    (manifest,), dataset = manifests_or_splits(explicit, params.dataset, data_root, [params.split])
    label = params.split if dataset is not None else manifest.stem
    checkpoint = run_dir_or_default(
        params.checkpoint,
        dataset,
        data_root,
        "give a checkpoint when evaluating an explicit manifest",
    )
    if not Path(checkpoint).exists():
        raise FsclapError(f"checkpoint not found: {checkpoint} (train it with train-fsclap first)")
    run_dir = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    out_dir = params.out_dir if params.out_dir is not None else RunDir(run_dir).eval_dir(label)
    get_run_logger().info("evaluating %s on %s -> %s", checkpoint, manifest, out_dir)
    report = evaluate_model(params, Path(checkpoint), Path(manifest), Path(out_dir), settings)
    report_evaluation(report, checkpoint, manifest, out_dir, params)
    return {
        **report.contract_json(),
        "table": report.table(),
        "metrics": str(out_dir / "metrics.json"),
        "plot": str(out_dir / "embeddings.png") if params.plot else None,
        "checkpoint": str(checkpoint),
        "manifest": str(manifest),
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

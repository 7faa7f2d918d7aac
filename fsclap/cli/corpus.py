"""``fsclap corpus build``: the corpus builder (the build-corpus flow, run here)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from flows.build_corpus import build_corpus
from flows.params import BuildCorpusParams, validated
from flows.runtime import prepare_local_prefect
from fsclap.cli.common import ProfileOpt, command_settings, finish, global_options
from fsclap.layout import DataRoot
from pipeline.runner import build_stages
from pipeline.sources import load_sources

app = typer.Typer(
    help="Corpus builder: sources -> clips with style captions.", no_args_is_help=True
)


@app.command("build")
def corpus_build(
    ctx: typer.Context,
    sources: Path = typer.Option(..., "--sources", help="Sources YAML (see data_manifests/)."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Output folder for manifests and audio."
    ),
    profile: str | None = ProfileOpt,
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Retry episodes that failed for a content reason."
    ),
    only: list[str] | None = typer.Option(
        None, "--stage", help="Run only this stage (repeatable)."
    ),
    dask_address: str | None = typer.Option(
        None,
        "--dask-address",
        help="Run the per-episode tasks on this "
        "existing Dask cluster (needs the dask extra of fsclap); "
        "default: threads here.",
    ),
) -> None:
    """Run the build-corpus flow here (Prefect's ephemeral mode unless PREFECT_API_URL is set):
    acquire -> extract -> separate -> diarize -> consistency -> caption -> publish."""
    runner = (
        {"orchestration.task_runner": "dask", "orchestration.dask_address": dask_address}
        if dask_address
        else {}
    )
    settings = command_settings(ctx, profile, {"data_root": data_root, **runner})
    # cheap checks first: a bad sources file or stage name fails before Prefect starts
    load_sources(sources)
    build_stages(settings, only or None)
    obj = global_options(ctx)
    overrides = list(obj.get("set") or []) + [f"{key}={value}" for key, value in runner.items()]
    arguments = dict(
        sources=sources,
        data_root=data_root,
        profile=profile,
        stages=only or None,
        retry_failed=retry_failed,
        config_file=obj.get("config"),
        overrides=overrides,
    )
    validated(BuildCorpusParams, arguments)  # what the flow checks first, before Prefect starts
    prepare_local_prefect(verbose=logging.getLogger("fsclap").getEffectiveLevel() <= logging.DEBUG)
    summary = build_corpus(**arguments)
    typer.echo(summary.render())
    finish(summary.failures, str(DataRoot(summary.data_root).failures_table))

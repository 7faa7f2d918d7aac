"""``fsclap prefect setup``: work pools, the gpu limit and every deployment, on one data root."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.deploy import run_setup
from fsclap.cli.common import command_settings

app = typer.Typer(
    help="Prefect server setup: work pools, limits and the deployments on a data root.",
    no_args_is_help=True,
)


@app.command("setup")
def prefect_setup(
    ctx: typer.Context,
    data_root: Path | None = typer.Option(
        None,
        "--data-root",
        envvar="FSCLAP_DATA_ROOT",
        show_envvar=True,
        help="Absolute data root on the workers; every deployment gets it as its data_root parameter.",
    ),
    sources: Path | None = typer.Option(
        None,
        "--sources",
        help="Sources file to write to DATA_ROOT/sources.yaml (never over an existing one): "
        "what the nightly refresh builds from.",
    ),
    demo_sources: bool = typer.Option(
        False,
        "--demo-sources",
        help="Generate small dramas under DATA_ROOT/demo-dramas (no internet) and write "
        "DATA_ROOT/sources.yaml for them unless it exists.",
    ),
    api_url: str | None = typer.Option(
        None, "--api-url", help="Prefect API URL (default: the configured PREFECT_API_URL)."
    ),
    prefect_file: Path | None = typer.Option(
        None,
        "--prefect-file",
        help="Deployment file (default: ./prefect.yaml, else the repository's).",
    ),
    gpu_slots: int = typer.Option(
        1, "--gpu-slots", min=1, help="Concurrency limit of gpu-tagged tasks, when created."
    ),
    notify_url: str | None = typer.Option(
        None,
        "--notify-url",
        help="Webhook (http/https) that gets a JSON {subject, body} when a run fails or crashes, "
        "a build has failed episodes, or a dataset is published.",
    ),
    notify_block: str | None = typer.Option(
        None,
        "--notify-block",
        help="Send those notifications through a notification block saved in Prefect instead "
        "(SLUG/NAME, e.g. slack-webhook/team).",
    ),
) -> None:
    """Create the cpu/gpu work pools, the gpu concurrency limit and the crash, recovery (and,
    with --notify-url/--notify-block, notification) automations if missing, and deploy every
    deployment of prefect.yaml with DATA_ROOT as its data_root.

    The nightly refresh builds DATA_ROOT/sources.yaml: its schedule is deployed paused while
    that file is missing (run setup again once it exists). Idempotent.
    """
    settings = command_settings(ctx)
    report = run_setup(
        data_root,
        sources=sources,
        demo_sources=demo_sources,
        api_url=api_url,
        prefect_file=prefect_file,
        gpu_slots=gpu_slots,
        workers=max(settings.workers, 1),
        say=lambda line: typer.echo(line, err=True),
        notify_url=notify_url,
        notify_block=notify_block,
    )
    typer.echo(report.render())

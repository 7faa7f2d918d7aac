"""``fsclap prefect setup``: work pools, the gpu limit and every deployment, on one data root."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.deploy import run_setup
from fsclap.cli.common import command_settings
from fsclap.demo_prefect import DEMO_RUNS, run_prefect_demo

app = typer.Typer(
    help="Prefect: set a server up (work pools, limits, deployments on a data root), or run the "
    "whole demo stack.",
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


@app.command("demo")
def prefect_demo(
    folder: Path = typer.Option(
        Path("prefect_demo"),
        "--folder",
        help="Working folder: the data root (FOLDER/data), the server's database, the logs.",
    ),
    port: int = typer.Option(4200, "--port", help="Port of the local Prefect server (UI and API)."),
    runs: str = typer.Option(
        ",".join(DEMO_RUNS),
        "--runs",
        help=f"Deployments to run, in order (of {', '.join(DEMO_RUNS)}; empty: none).",
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Keep the stack up until Ctrl-C (--no-wait: stop at once)."
    ),
) -> None:
    """Start a local Prefect server with auth and a worker per pool, set it up on generated
    dramas, run the nightly build, training and evaluation deployments, print the UI links and
    keep everything running until Ctrl-C (then stop all it started)."""
    chosen = [name.strip() for name in runs.split(",") if name.strip()]
    code = run_prefect_demo(folder, port=port, runs=chosen, wait=wait, say=typer.echo)
    raise typer.Exit(code)

"""``fsclap demo``: the command; the demo itself is :mod:`fsclap.demo`."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import command_settings
from fsclap.demo import run_demo

app = typer.Typer()


@app.command("demo")
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo_out"), "--out", help="Working folder for the demo."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run every stage that exists end to end on generated data (offline profile) and print the result."""
    run_demo(command_settings(ctx), out=out, seed=seed)

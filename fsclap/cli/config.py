"""``fsclap config``: the effective settings."""

from __future__ import annotations

import typer
import yaml

from fsclap.cli.common import ProfileOpt, command_settings

app = typer.Typer()


@app.command("config")
def show_config(ctx: typer.Context, profile: str | None = ProfileOpt) -> None:
    """Print the effective settings (defaults < file < FSCLAP_* env < --set) as YAML."""
    settings = command_settings(ctx, profile)
    typer.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False).rstrip())

"""What the command modules share: the settings of an invocation and the common ``--profile``."""

from __future__ import annotations

import typer

from fsclap.config import Settings, load_settings
from fsclap.errors import EXIT_SOME_FAILED

ProfileOpt = typer.Option(None, "--profile", help="offline (default) | paper")


def global_options(ctx: typer.Context) -> dict:
    """The top-level ``--config`` and ``--set`` of this invocation (``{"config": ..., "set": [...]}``)."""
    return ctx.find_root().obj or {}


def command_settings(
    ctx: typer.Context, profile: str | None = None, extra: dict | None = None
) -> Settings:
    """Global settings from the top-level --config/--set, with a command's own overrides on top."""
    obj = global_options(ctx)
    overrides = list(obj.get("set") or [])
    if profile is not None:
        overrides.append(f"profile={profile}")
    for key, value in (extra or {}).items():
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_settings(obj.get("config"), overrides)


def finish(failed: int, what: str) -> None:
    """End a command that finished its work: exit 3 when ``failed`` items failed (recorded in
    ``what``, which the line names), so a script can tell a partial result from a full one."""
    if failed:
        typer.echo(f"finished with {failed} failed item(s): see {what}", err=True)
        raise typer.Exit(EXIT_SOME_FAILED)

"""``fsclap models list|pull|verify``: the model weights registry (fsclap/weights/)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fsclap.cli.common import command_settings
from fsclap.errors import FsclapError
from fsclap.weights import model_ids, pull_models, verify_models
from fsclap.weights.listing import list_models, render_table, to_json

app = typer.Typer(
    help="Model weights: list, pull, verify (layout: $FSCLAP_MODELS/<model id>).",
    no_args_is_help=True,
)

ModelsOpt = typer.Option(
    None, "--only", help="Only this model id (repeatable; ids: see 'fsclap models list')."
)
ModelsProfileOpt = typer.Option(None, "--profile", help="paper (default) | offline: whose models.")


def _model_profile(profile: str | None) -> str:
    if profile not in (None, "paper", "offline"):
        raise FsclapError(f"--profile must be paper or offline, not {profile!r}")
    return profile or "paper"


@app.command("list")
def models_list(
    ctx: typer.Context,
    profile: str | None = typer.Option(None, "--profile", help="paper | offline (default: both)."),
    only: list[str] | None = ModelsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every model the profiles use: source, files, size, licence, where it is looked for, present? valid?"""
    if profile is not None:
        _model_profile(profile)
    statuses = list_models(command_settings(ctx, profile), profile, only or None)
    typer.echo(json.dumps(to_json(statuses), indent=2) if as_json else render_table(statuses))


@app.command("pull")
def models_pull(
    ctx: typer.Context,
    profile: str | None = ModelsProfileOpt,
    to: Path | None = typer.Option(
        None,
        "--to",
        help="Put every model in DIR/<id> and the lock file in DIR "
        "(default: where the settings look: models_dir / $FSCLAP_MODELS, model_paths.<id>).",
    ),
    only: list[str] | None = ModelsOpt,
    offline: bool = typer.Option(
        False, "--offline", help="Use local caches and files only; never the network."
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Ignore the lock: fetch again, or (offline) lock the files found as they are.",
    ),
    revision: list[str] | None = typer.Option(
        None, "--revision", help="ID=REV: hub revision of one model (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Download the paper profile's models with their ecosystems' own clients and lock their checksums."""
    profile = _model_profile(profile)
    settings = command_settings(ctx, profile)
    revisions = {}
    for pair in revision or []:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise FsclapError(f"--revision expects ID=REV, got {pair!r}")
        revisions[key] = value
    report = pull_models(
        settings,
        model_ids(profile, only or None),
        to=to,
        offline=offline,
        force=force,
        revisions=revisions,
    )
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    if report.manual:
        raise FsclapError(
            f"{len(report.manual)} model(s) could not be downloaded here ("
            + ", ".join(report.manual)
            + "): copy the files listed above by hand"
        )
    failed = [r for r in report.results if r.status == "failed"]
    if failed:  # installed but not usable (e.g. a corrupt copy in a cache)
        raise FsclapError(
            f"{len(failed)} model(s) failed to pull: "
            + "; ".join(f"{r.id}: {r.detail}" for r in failed)
        )


@app.command("verify")
def models_verify(
    ctx: typer.Context,
    profile: str | None = ModelsProfileOpt,
    only: list[str] | None = ModelsOpt,
    load: bool = typer.Option(
        True,
        "--load/--no-load",
        help="Load each model and run it on silence (default) or only check files and checksums.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check presence, checksums (against the lock file) and that each model loads and runs."""
    profile = _model_profile(profile)
    settings = command_settings(ctx, profile)
    report = verify_models(settings, model_ids(profile, only or None), load=load)
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    report.raise_for_failures()

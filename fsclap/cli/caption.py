"""``fsclap caption``: measure style attributes and write captions for a clip manifest."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import ProfileOpt, command_settings, finish
from pipeline.caption import caption_manifest

app = typer.Typer()


@app.command("caption")
def caption(
    ctx: typer.Context,
    manifest: Path = typer.Option(..., "--manifest", help="Clip manifest to caption."),
    out: Path = typer.Option(
        ..., "--out", help="Output clip manifest with attributes and captions."
    ),
    profile: str | None = ProfileOpt,
    language: str | None = typer.Option(
        None,
        "--language",
        help="Language of the `caption` column: en | zh "
        "(default stages.caption.caption_language; both columns are written).",
    ),
    seed: int | None = typer.Option(None, "--seed", help="Template seed (default: settings seed)."),
) -> None:
    """Measure gender/pitch/speed/energy (+ emotion on the paper profile) and write style captions."""
    settings = command_settings(ctx, profile)
    result = caption_manifest(manifest, out, settings, language=language, seed=seed)
    typer.echo(result.summary())
    finish(result.rejected, str(result.rejects_path))

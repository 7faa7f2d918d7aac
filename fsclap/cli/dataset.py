"""``fsclap dataset publish|import|export``: dataset versions and other datasets' layouts."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import command_settings
from fsclap.errors import FsclapError
from fsclap.io import write_table
from fsclap.manifest import ClipManifest
from pipeline.formats import export_manifest, import_manifest
from pipeline.formats.common import relative
from pipeline.publish import PublishConfig, publish_manifest

app = typer.Typer(
    help="Dataset versions and other datasets' layouts: publish, import, export.",
    no_args_is_help=True,
)


@app.command("publish")
def dataset_publish(
    ctx: typer.Context,
    manifest: Path = typer.Option(
        ..., "--manifest", help="Captioned clip manifest (e.g. `fsclap caption` output)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Datasets folder; the version goes to OUT/<version>/."
    ),
    keep_splits: bool = typer.Option(
        False, "--keep-splits", help="Keep the manifest's own split column."
    ),
) -> None:
    """Publish a clip manifest as a content-addressed dataset version with disjoint splits and a data card."""
    settings = command_settings(ctx)
    config = PublishConfig(
        **{
            **settings.stages.get("publish", {}),
            "keep_splits": keep_splits,
            "seed": settings.stages.get("publish", {}).get("seed", settings.seed),
        }
    )
    typer.echo(publish_manifest(manifest, out, config).summary())


@app.command("import")
def dataset_import(
    ctx: typer.Context,
    source: Path = typer.Option(
        ..., "--input", help="The other dataset's manifest (CSV/TSV/JSONL/cuts/folder)."
    ),
    fmt: str = typer.Option(
        ..., "--format", help="textrolspeech | promptspeech | fsclap-csv | hf-parquet | lhotse"
    ),
    out: Path = typer.Option(..., "--out", help="Clip manifest to write (.parquet or .csv)."),
    audio_root: Path | None = typer.Option(
        None, "--audio-root", help="Folder holding the audio (default: beside the input)."
    ),
) -> None:
    """Read another dataset's layout into a clip manifest (rows that cannot be imported are listed)."""
    command_settings(ctx)
    result = import_manifest(source, fmt, audio_root)
    if result.frame.empty:
        raise FsclapError(f"nothing imported from {source}: {result.summary()}")
    frame = result.frame.copy()
    frame["audio_path"] = [relative(p, out.parent) for p in frame["audio_path"]]
    write_table(out, frame)
    if len(result.problems):
        write_table(out.with_name(out.stem + ".problems.csv"), result.problems)
    typer.echo(f"{result.summary()} -> {out}")


@app.command("export")
def dataset_export(
    ctx: typer.Context,
    manifest: Path = typer.Option(..., "--manifest", help="Clip manifest (or a published split)."),
    fmt: str = typer.Option(
        ..., "--format", help="fsclap-csv | textrolspeech | hf-parquet | lhotse"
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output file (csv, cuts.jsonl.gz) or folder (hf-parquet)."
    ),
) -> None:
    """Write a clip manifest in another layout."""
    command_settings(ctx)
    frame = ClipManifest.read(manifest, validate_levels=False).frame
    typer.echo(f"exported {len(frame)} clips -> {export_manifest(frame, out, fmt)}")

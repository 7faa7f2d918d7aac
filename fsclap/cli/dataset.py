"""``fsclap dataset publish|import|export``: dataset versions and other datasets' layouts."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import command_settings, finish
from fsclap.errors import FsclapError
from fsclap.io import write_table
from fsclap.manifest import ClipManifest
from pipeline.formats import AUDIO_ROOT_WRITE, export_manifest, import_manifest
from pipeline.formats.common import absolute, export_root, relative
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
        None,
        "--audio-root",
        help="Folder the item names resolve against (textrolspeech, promptspeech; default: beside "
        "the input); for fsclap-csv and lhotse, relative paths are tried here after the working "
        "directory.",
    ),
    encoding: str | None = typer.Option(
        None,
        "--encoding",
        help="Text encoding of a CSV/TSV/JSONL input (default: detect UTF-8, UTF-8 with BOM, GBK).",
    ),
) -> None:
    """Read another dataset's layout into a clip manifest (rows that cannot be imported are listed
    in OUT.problems.csv, exit 3). Audio embedded in the input (hf-parquet) goes to OUT_audio/."""
    command_settings(ctx)
    audio_dir = out.with_name(out.stem + "_audio")
    result = import_manifest(source, fmt, audio_root, encoding, audio_dir)
    if result.frame.empty:
        raise FsclapError(f"nothing imported from {source}: {result.summary()}")
    # what is written must read back: the clip manifest's rules (times, ids) checked here
    frame = ClipManifest.from_frame(result.frame, validate_levels=False, source=source).frame
    # fsclap's rule: relative paths in a clip manifest are relative to the manifest's folder
    frame["audio_path"] = [relative(p, Path(absolute(out.parent))) for p in frame["audio_path"]]
    write_table(out, frame)
    problems = out.with_name(out.stem + ".problems.csv")
    if len(result.problems):
        write_table(problems, result.problems)
    elif problems.exists():
        problems.unlink()  # from an earlier import of another input
    typer.echo(f"{result.summary()} -> {out}")
    finish(len(result.problems), str(problems))


@app.command("export")
def dataset_export(
    ctx: typer.Context,
    manifest: Path = typer.Option(..., "--manifest", help="Clip manifest (or a published split)."),
    fmt: str = typer.Option(
        ...,
        "--format",
        help="fsclap-csv | textrolspeech | promptspeech | hf-parquet | lhotse",
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output file (csv, cuts.jsonl.gz) or folder (hf-parquet)."
    ),
    audio_root: Path | None = typer.Option(
        None,
        "--audio-root",
        help="textrolspeech, promptspeech: the folder item names resolve against (default: the "
        "deepest folder holding all the audio); import with the same --audio-root.",
    ),
    relative_paths: bool = typer.Option(
        False,
        "--relative-paths",
        help="fsclap-csv: wav_fp relative to OUT's folder (FS-CLAP's loader must then run from "
        "there) instead of absolute.",
    ),
) -> None:
    """Write a clip manifest in another layout, as that project's own loader reads it."""
    command_settings(ctx)
    frame = ClipManifest.read(Path(absolute(manifest)), validate_levels=False).frame
    written = export_manifest(frame, out, fmt, audio_root=audio_root, relative_paths=relative_paths)
    note = ""
    if fmt in AUDIO_ROOT_WRITE:
        root = export_root([absolute(p) for p in frame["audio_path"]], audio_root)
        note = f" (item names resolve against --audio-root {root})"
    typer.echo(f"exported {len(frame)} clips -> {written}{note}")

"""The ``fsclap`` command line (contract in docs/design.md): the root command and its commands.

Each command lives in a module of this package (one per command group) and is imported only when
it runs or shows its own ``--help`` (:mod:`fsclap.cli.lazy`), so ``fsclap --help`` stays fast.
Commands parse their options, load :class:`~fsclap.config.Settings` (:mod:`fsclap.cli.common`) and
call into ``pipeline/``, ``model/`` or ``flows/``. Bad input ends as ``error: <one line>`` and a
non-zero exit.
"""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap import __version__
from fsclap.cli.lazy import LazyCommand, LazyGroup
from fsclap.errors import FsclapError
from fsclap.log import setup_logging


class RootGroup(LazyGroup):
    # In the order `fsclap --help` lists them; the help line is the one it shows (the first
    # paragraph of the command's own help).
    lazy_subcommands = (
        LazyCommand(
            "config",
            "fsclap.cli.config",
            "Print the effective settings (defaults < file < FSCLAP_* env < --set) as YAML.",
        ),
        LazyCommand(
            "caption",
            "fsclap.cli.caption",
            "Measure gender/pitch/speed/energy (+ emotion on the paper profile) and write style "
            "captions.",
        ),
        LazyCommand(
            "train",
            "fsclap.cli.training",
            "Train FS-CLAP (or an ablation / the CLAP baseline) on a clip manifest.",
        ),
        LazyCommand(
            "eval",
            "fsclap.cli.training",
            "Leak-free full-gallery retrieval metrics (R@1/5/10, mAP@10, both directions).",
        ),
        LazyCommand(
            "index",
            "fsclap.cli.retrieval",
            "Embed a manifest once and build a searchable index (incremental: only new clips are "
            "embedded).",
        ),
        LazyCommand(
            "search",
            "fsclap.cli.retrieval",
            "Find clips by style description (text->audio) or by example clip (audio->audio/text).",
        ),
        LazyCommand(
            "ablation",
            "fsclap.cli.training",
            "Train and evaluate the paper's Table 3 rows (FU/SE/HN on/off, CLAP baseline) at equal "
            "budget.",
        ),
        LazyCommand(
            "serve", "fsclap.cli.serve", "Serve the style-search page and HTTP API over an index."
        ),
        LazyCommand(
            "demo",
            "fsclap.cli.demo",
            "Run every stage that exists end to end on generated data (offline profile) and print "
            "the result.",
        ),
        LazyCommand(
            "corpus",
            "fsclap.cli.corpus",
            "Corpus builder: sources -> clips with style captions.",
            group=True,
        ),
        LazyCommand(
            "synth",
            "fsclap.cli.synth",
            "Generated speech with ground truth (demo, tests, benchmarks).",
            group=True,
        ),
        LazyCommand(
            "models",
            "fsclap.cli.models",
            "Model weights: list, pull, verify (layout: $FSCLAP_MODELS/<model id>).",
            group=True,
        ),
        LazyCommand(
            "dataset",
            "fsclap.cli.dataset",
            "Dataset versions and other datasets' layouts: publish, import, export.",
            group=True,
        ),
        LazyCommand(
            "prefect",
            "fsclap.cli.prefect",
            "Prefect: set a server up (work pools, limits, deployments on a data root), or run the "
            "whole demo stack.",
            group=True,
        ),
    )


app = typer.Typer(
    name="fsclap",
    cls=RootGroup,
    help="Build emotional-speaking-style speech corpora from short dramas; train, evaluate and serve FS-CLAP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fsclap {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML settings file (else $FSCLAP_CONFIG)."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Override a setting: key=value (repeatable, dotted keys for sections)."
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG | INFO | WARNING | ERROR"),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    # read by the commands through fsclap.cli.common.global_options
    ctx.obj = {"config": config, "set": set_ or []}
    setup_logging(log_level)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: usage errors are Typer's; our own errors print one line and exit non-zero."""
    try:
        app(args=argv, prog_name="fsclap")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except FsclapError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    return 0

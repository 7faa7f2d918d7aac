"""``fsclap synth style|drama``: generated speech with exact ground truth."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import command_settings
from pipeline.synth import generate_dramas, generate_style_corpus
from pipeline.synth.drama import parse_speaker_range

app = typer.Typer(
    help="Generated speech with ground truth (demo, tests, benchmarks).", no_args_is_help=True
)


@app.command("style")
def synth_style(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output folder for clips and manifest."),
    n: int = typer.Option(200, "--n", min=1, help="Number of clips."),
    seed: int = typer.Option(0, "--seed", help="Random seed (output is deterministic by seed)."),
    family: str = typer.Option(
        "train",
        "--family",
        help="Voice family: train (espeak-ng, speaker-disjoint splits), test (held-out neural "
        "voices, all clips in split test) or all.",
    ),
    label_mode: str | None = typer.Option(
        None,
        "--label-mode",
        help="bands (absolute target bands; default for train) or relative (levels "
        "relative to each voice's own normal; default otherwise).",
    ),
) -> None:
    """Generate a style corpus: clips with known gender/pitch/speed/energy and captions."""
    settings = command_settings(ctx)
    result = generate_style_corpus(
        out, n=n, seed=seed, workers=settings.workers, family=family, label_mode=label_mode
    )
    typer.echo(result.summary())


@app.command("drama")
def synth_drama(
    ctx: typer.Context,
    out: Path = typer.Option(
        ..., "--out", help="Output folder for episodes, sources.yaml and ground truth."
    ),
    dramas: int = typer.Option(1, "--dramas", min=1, help="Number of dramas."),
    episodes: int = typer.Option(3, "--episodes", min=1, help="Episodes per drama."),
    seed: int = typer.Option(0, "--seed", help="Random seed (output is deterministic by seed)."),
    duration: float = typer.Option(60.0, "--duration", min=5.0, help="Seconds per episode."),
    family: str = typer.Option(
        "train",
        "--family",
        help="Voice family: train (espeak-ng), test (held-out neural voices) or all.",
    ),
    speakers: str = typer.Option(
        "2-4", "--speakers", help="Speakers per drama, a range lo-hi (e.g. 3-6) or one number."
    ),
    restyle: float = typer.Option(
        0.0,
        "--restyle",
        min=0.0,
        max=1.0,
        help="Share of lines pitch-shifted afterwards (formants move with the pitch).",
    ),
) -> None:
    """Generate short-drama episodes (MP4) with speakers over music and exact ground truth."""
    settings = command_settings(ctx)
    result = generate_dramas(
        out,
        dramas=dramas,
        episodes=episodes,
        seed=seed,
        duration_s=duration,
        workers=settings.workers,
        family=family,
        speakers=parse_speaker_range(speakers),
        restyle=restyle,
    )
    typer.echo(result.summary())

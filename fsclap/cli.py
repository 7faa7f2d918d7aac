"""The ``fsclap`` command line (contract in docs/design.md).

Each command parses its options, loads :class:`~fsclap.config.Settings` and calls into
``pipeline/``, ``model/`` or ``flows/``; heavy imports happen inside the command so that
``fsclap --help`` stays fast. Bad input ends as ``error: <one line>`` and a non-zero exit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from fsclap import __version__
from fsclap.config import Settings, load_settings
from fsclap.errors import FsclapError
from fsclap.log import setup_logging

app = typer.Typer(
    name="fsclap",
    help="Build emotional-speaking-style speech corpora from short dramas; train, evaluate and serve FS-CLAP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(
    help="Corpus builder: sources -> clips with style captions.", no_args_is_help=True
)
synth_app = typer.Typer(
    help="Generated speech with ground truth (demo, tests, benchmarks).", no_args_is_help=True
)
models_app = typer.Typer(
    help="Model weights: list, pull, verify (layout: $FSCLAP_MODELS/<model id>).",
    no_args_is_help=True,
)
app.add_typer(corpus_app, name="corpus")
app.add_typer(synth_app, name="synth")
app.add_typer(models_app, name="models")

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML settings file (else $FSCLAP_CONFIG).")
SetOpt = typer.Option(
    None, "--set", help="Override a setting: key=value (repeatable, dotted keys for sections)."
)
ProfileOpt = typer.Option(None, "--profile", help="offline (default) | paper")


def _settings(
    ctx: typer.Context, profile: str | None = None, extra: dict | None = None
) -> Settings:
    """Global settings from the top-level --config/--set, with a command's own overrides on top."""
    obj = ctx.find_root().obj or {}
    overrides = list(obj.get("set") or [])
    if profile is not None:
        overrides.append(f"profile={profile}")
    for key, value in (extra or {}).items():
        if value is not None:
            overrides.append(f"{key}={value}")
    return load_settings(obj.get("config"), overrides)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fsclap {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = ConfigOpt,
    set_: list[str] | None = SetOpt,
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG | INFO | WARNING | ERROR"),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    ctx.obj = {"config": config, "set": set_ or []}
    setup_logging(log_level)


@app.command("config")
def show_config(ctx: typer.Context, profile: str | None = ProfileOpt) -> None:
    """Print the effective settings (defaults < file < FSCLAP_* env < --set) as YAML."""
    import yaml

    settings = _settings(ctx, profile)
    typer.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False).rstrip())


# --- corpus builder -------------------------------------------------------------------------


@corpus_app.command("build")
def corpus_build(
    ctx: typer.Context,
    sources: Path = typer.Option(..., "--sources", help="Sources YAML (see data_manifests/)."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Output folder for manifests and audio."
    ),
    profile: str | None = ProfileOpt,
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Retry episodes that failed for a content reason."
    ),
    only: list[str] | None = typer.Option(
        None, "--stage", help="Run only this stage (repeatable)."
    ),
    dask_address: str | None = typer.Option(
        None,
        "--dask-address",
        help="Run the per-episode tasks on this "
        "existing Dask cluster (needs the dask extra of fsclap); "
        "default: threads here.",
    ),
) -> None:
    """Run the build-corpus flow here (Prefect's ephemeral mode unless PREFECT_API_URL is set):
    acquire -> extract -> separate -> diarize -> consistency -> caption -> publish."""
    import logging

    from pydantic import ValidationError

    from fsclap.config import format_validation_error

    runner = (
        {"orchestration.task_runner": "dask", "orchestration.dask_address": dask_address}
        if dask_address
        else {}
    )
    settings = _settings(ctx, profile, {"data_root": data_root, **runner})
    # cheap checks first: a bad sources file or stage name fails before Prefect starts
    from pipeline.runner import build_stages
    from pipeline.sources import load_sources

    load_sources(sources)
    build_stages(settings, only or None)
    obj = ctx.find_root().obj or {}
    overrides = list(obj.get("set") or []) + [f"{key}={value}" for key, value in runner.items()]
    from flows.params import BuildCorpusParams

    try:
        params = BuildCorpusParams(
            sources=sources,
            data_root=data_root,
            profile=profile,
            stages=only or None,
            retry_failed=retry_failed,
            config_file=obj.get("config"),
            overrides=overrides,
        )
    except ValidationError as exc:
        raise FsclapError(f"invalid options: {format_validation_error(exc)}") from None
    from flows.runtime import prepare_local_prefect

    prepare_local_prefect(verbose=logging.getLogger("fsclap").getEffectiveLevel() <= logging.DEBUG)
    from flows.build_corpus import build_corpus

    summary = build_corpus(params)
    typer.echo(summary.render())


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
    settings = _settings(ctx, profile)
    from pipeline.caption import caption_manifest

    result = caption_manifest(manifest, out, settings, language=language, seed=seed)
    typer.echo(result.summary())


# --- datasets: publish, import, export ----------------------------------------------------

dataset_app = typer.Typer(
    help="Dataset versions and other datasets' layouts: publish, import, export.",
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")


@dataset_app.command("publish")
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
    settings = _settings(ctx)
    from pipeline.publish import PublishConfig, publish_manifest

    config = PublishConfig(
        **{
            **settings.stages.get("publish", {}),
            "keep_splits": keep_splits,
            "seed": settings.stages.get("publish", {}).get("seed", settings.seed),
        }
    )
    typer.echo(publish_manifest(manifest, out, config).summary())


@dataset_app.command("import")
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
    _settings(ctx)
    from fsclap.io import write_table
    from pipeline.formats import import_manifest
    from pipeline.formats.common import relative

    result = import_manifest(source, fmt, audio_root)
    if result.frame.empty:
        raise FsclapError(f"nothing imported from {source}: {result.summary()}")
    frame = result.frame.copy()
    frame["audio_path"] = [relative(p, out.parent) for p in frame["audio_path"]]
    write_table(out, frame)
    if len(result.problems):
        write_table(out.with_name(out.stem + ".problems.csv"), result.problems)
    typer.echo(f"{result.summary()} -> {out}")


@dataset_app.command("export")
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
    _settings(ctx)
    from fsclap.manifest import ClipManifest
    from pipeline.formats import export_manifest

    frame = ClipManifest.read(manifest, validate_levels=False).frame
    typer.echo(f"exported {len(frame)} clips -> {export_manifest(frame, out, fmt)}")


# --- generated speech -----------------------------------------------------------------------


@synth_app.command("style")
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
    settings = _settings(ctx)
    from pipeline.synth import generate_style_corpus

    result = generate_style_corpus(
        out, n=n, seed=seed, workers=settings.workers, family=family, label_mode=label_mode
    )
    typer.echo(result.summary())


@synth_app.command("drama")
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
    settings = _settings(ctx)
    from pipeline.synth import generate_dramas
    from pipeline.synth.drama import parse_speaker_range

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


# --- model ----------------------------------------------------------------------------------


@app.command("train")
def train(
    ctx: typer.Context,
    train_manifest: Path = typer.Option(..., "--train", help="Training clip manifest."),
    val_manifest: Path = typer.Option(..., "--val", help="Validation clip manifest."),
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, metrics, plots)."),
    config: Path | None = typer.Option(
        None, "--config", help="Training config (JSON/YAML), or a preset: paper, auto."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Training override key=value (repeatable)."
    ),
) -> None:
    """Train FS-CLAP (or an ablation / the CLAP baseline) on a clip manifest.

    By default (preset auto) batch, epochs and warm-up are derived from the number of training clips
    (about 400 optimizer steps, at least 10 epochs; the log says what was chosen). `--config paper`
    (or `--set preset=paper`) gives the paper's settings exactly: batch 96 x 2 accumulation, 10 epochs,
    1 warm-up epoch, lr 4e-5 backbone / 1e-4 fusion-separation. Explicit `--set` values win.
    Re-running the same command resumes a killed run.
    """
    from model.train_config import load_train_config
    from model.training import train as run_training

    settings = _settings(ctx)
    cfg = load_train_config(config, set_ or [])
    result = run_training(train_manifest, val_manifest, out, cfg, settings=settings)
    if result.skipped:
        typer.echo(
            f"skipped {result.skipped} manifest row(s) (missing/corrupt audio, empty caption): {out / 'skipped.csv'}"
        )
    if not result.finished:
        typer.echo(
            f"stopped after step {result.steps} (epoch {result.epochs_done}/{result.schedule.epochs}); "
            f"run the same command to resume"
        )
    schedule = result.schedule
    typer.echo(
        f"schedule: batch {schedule.batch_size} x {schedule.grad_accum} accumulation"
        f"{f' x {schedule.world} processes' if schedule.world > 1 else ''}, {schedule.epochs} epochs, "
        f"{schedule.total_steps} optimizer steps (preset {schedule.preset})"
    )
    if result.best_epoch is not None:
        m = result.best_metrics
        typer.echo(
            f"best epoch {result.best_epoch} (N={m['n']} val clips): "
            f"a2t R@1 {m['a2t_R@1']:.1f} R@5 {m['a2t_R@5']:.1f} mAP@10 {m['a2t_mAP@10']:.1f} | "
            f"t2a R@1 {m['t2a_R@1']:.1f} R@5 {m['t2a_R@5']:.1f} mAP@10 {m['t2a_mAP@10']:.1f}"
        )
        typer.echo(
            f"checkpoint: {out / 'checkpoints' / 'best'}  metrics: {out / 'metrics.csv'}  plot: {out / 'curves.png'}"
        )


@app.command("eval")
def evaluate(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run directory or checkpoint file."),
    manifest: Path = typer.Option(..., "--manifest", help="Test clip manifest."),
    json_out: Path | None = typer.Option(
        None, "--json", help="Write metrics JSON here (+ OUT.details.json)."
    ),
    rerank: int = typer.Option(
        0, "--rerank", min=0, help="Also re-rank each bi top-K shortlist with pair scores."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Save a UMAP map of audio and text embeddings (PNG)."
    ),
    skip_missing: bool = typer.Option(
        False, "--skip-missing", help="Leave out rows with missing audio/captions."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
) -> None:
    """Leak-free full-gallery retrieval metrics (R@1/5/10, mAP@10, both directions)."""
    from model.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(
        checkpoint,
        manifest,
        _settings(ctx),
        json_out=json_out,
        rerank_k=rerank,
        plot=plot,
        allow_skip=skip_missing,
        batch_size=batch_size,
    )
    typer.echo(report.table())
    if json_out:
        typer.echo(f"metrics: {json_out}")
    if plot:
        typer.echo(f"embedding map: {plot}")


@app.command("index")
def index(
    ctx: typer.Context,
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Run directory or checkpoint file."),
    manifest: Path = typer.Option(..., "--manifest", help="Clip manifest to embed."),
    out: Path = typer.Option(
        ..., "--out", help="Index directory (an existing one gets the new clips added)."
    ),
    kind: str = typer.Option(
        "auto", "--kind", help="auto | exact | hnsw (auto: exact up to 100k clips)."
    ),
    skip_missing: bool = typer.Option(
        False, "--skip-missing", help="Leave out rows with missing audio/captions."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    ef_search: int | None = typer.Option(
        None,
        "--ef-search",
        min=1,
        help="HNSW search breadth (default: the smallest reaching 95% recall@10, "
        "measured on the corpus at build time).",
    ),
) -> None:
    """Embed a manifest once and build a searchable index (incremental: only new clips are embedded)."""
    from model.retrieval import build_index

    ix, added = build_index(
        checkpoint,
        manifest,
        out,
        _settings(ctx),
        kind=kind,
        allow_skip=skip_missing,
        batch_size=batch_size,
        ef_search=ef_search,
    )
    typer.echo(
        f"index {out}: {len(ix)} clips ({added} added), {ix.meta['kind']} search, {ix.dim}-d"
    )


@app.command("search")
def search(
    ctx: typer.Context,
    query: str = typer.Argument(..., help="A style description, or a path to an audio file."),
    index_dir: Path = typer.Option(..., "--index", help="Index directory from 'fsclap index'."),
    k: int = typer.Option(10, "-k", min=1, help="Number of results."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    rerank: int = typer.Option(
        0, "--rerank", min=0, help="Re-rank a text query's top-K with pair scores."
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Model (default: the index's own)."
    ),
    ef_search: int | None = typer.Option(
        None,
        "--ef-search",
        min=1,
        help="HNSW indexes: search breadth for this query (default: the index's).",
    ),
) -> None:
    """Find clips by style description (text->audio) or by example clip (audio->audio/text)."""
    import json as _json

    from model.retrieval import Searcher, looks_like_audio_file

    settings = _settings(ctx)
    searcher = Searcher(
        index_dir, checkpoint, device=settings.resolved_device(), ef_search=ef_search
    )
    if looks_like_audio_file(query):
        similar, captions = searcher.search_audio(query, k)
        if as_json:
            typer.echo(
                _json.dumps(
                    {
                        "query": query,
                        "kind": "audio",
                        "similar_clips": [r.to_json() for r in similar],
                        "captions": [{"caption": c, "score": s} for c, s in captions],
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
            return
        typer.echo(f"clips that sound like {query}:")
        for r in similar:
            typer.echo(f"{r.rank:3d}  {r.score:+.4f}  {r.clip_id}  {r.caption}  {r.audio_path}")
        typer.echo("\ndescriptions that match it:")
        for rank, (caption, score) in enumerate(captions, 1):
            typer.echo(f"{rank:3d}  {score:+.4f}  {caption}")
        return
    results = searcher.search_text(query, k, rerank=rerank)
    if as_json:
        typer.echo(
            _json.dumps(
                {"query": query, "kind": "text", "results": [r.to_json() for r in results]},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for r in results:
        typer.echo(f"{r.rank:3d}  {r.score:+.4f}  {r.clip_id}  {r.caption}  {r.audio_path}")


@app.command("ablation")
def ablation(
    ctx: typer.Context,
    train_manifest: Path = typer.Option(..., "--train", help="Training clip manifest."),
    val_manifest: Path = typer.Option(
        ..., "--val", help="Validation clip manifest (best-checkpoint selection)."
    ),
    test_manifest: Path = typer.Option(
        ..., "--test", help="Test clip manifest (reported numbers)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for one run per row and table3.md."),
    config: Path | None = typer.Option(
        None, "--config", help="Training config shared by every row."
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Training override for every row (repeatable)."
    ),
) -> None:
    """Train and evaluate the paper's Table 3 rows (FU/SE/HN on/off, CLAP baseline) at equal budget."""
    from model.ablation import run_ablation

    table = run_ablation(
        train_manifest,
        val_manifest,
        test_manifest,
        out,
        overrides=set_ or [],
        config_file=config,
        settings=_settings(ctx),
    )
    typer.echo(table)
    typer.echo(f"\ntable: {out / 'table3.md'}")


@app.command("serve")
def serve(
    ctx: typer.Context,
    index_dir: Path = typer.Option(..., "--index", help="Index directory from 'fsclap index'."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (beyond loopback needs a token)."
    ),
    port: int = typer.Option(
        8000, "--port", min=0, max=65535, help="Port (0: any free port, printed)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="FSCLAP_SERVE_TOKEN",
        show_envvar=True,
        help="Require this token (Authorization: Bearer, ?token=).",
    ),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Model (default: the index's own)."
    ),
    max_upload_mb: int = typer.Option(
        20, "--max-upload-mb", min=1, help="Largest audio upload accepted."
    ),
) -> None:
    """Serve the style-search page and HTTP API over an index."""
    from fsclap.web import check_bind, create_app
    from fsclap.web import serve as run_server
    from fsclap.web.models import Limits

    check_bind(host, token)  # before loading anything
    settings = _settings(ctx)
    app_ = create_app(
        index_dir,
        checkpoint=checkpoint,
        device=settings.resolved_device(),
        token=token,
        limits=Limits(max_upload_bytes=max_upload_mb * 2**20),
    )
    run_server(app_, host, port, token=token)


@app.command("demo")
def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo_out"), "--out", help="Working folder for the demo."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Run every stage that exists end to end on generated data (offline profile) and print the result."""
    from fsclap.demo import run_demo

    run_demo(_settings(ctx), out=out, seed=seed)


# --- models ---------------------------------------------------------------------------------

ModelsOpt = typer.Option(
    None, "--only", help="Only this model id (repeatable; ids: see 'fsclap models list')."
)
ModelsProfileOpt = typer.Option(None, "--profile", help="paper (default) | offline: whose models.")


def _model_profile(profile: str | None) -> str:
    if profile not in (None, "paper", "offline"):
        raise FsclapError(f"--profile must be paper or offline, not {profile!r}")
    return profile or "paper"


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    profile: str | None = typer.Option(None, "--profile", help="paper | offline (default: both)."),
    only: list[str] | None = ModelsOpt,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every model the profiles use: source, files, size, licence, where it is looked for, present? valid?"""
    import json

    from fsclap.weights.listing import list_models, render_table, to_json

    if profile is not None:
        _model_profile(profile)
    statuses = list_models(_settings(ctx, profile), profile, only or None)
    typer.echo(json.dumps(to_json(statuses), indent=2) if as_json else render_table(statuses))


@models_app.command("pull")
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
    import json

    from fsclap.weights import model_ids, pull_models

    profile = _model_profile(profile)
    settings = _settings(ctx, profile)
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


@models_app.command("verify")
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
    import json

    from fsclap.weights import model_ids, verify_models

    profile = _model_profile(profile)
    settings = _settings(ctx, profile)
    report = verify_models(settings, model_ids(profile, only or None), load=load)
    typer.echo(json.dumps(report.to_json(), indent=2) if as_json else report.render())
    report.raise_for_failures()


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


if __name__ == "__main__":
    sys.exit(main())

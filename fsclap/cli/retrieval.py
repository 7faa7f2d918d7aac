"""``fsclap index`` and ``fsclap search``: embed a manifest into an index and query it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fsclap.cli.common import command_settings, finish
from fsclap.io import write_table
from model.retrieval import Searcher, build_index, looks_like_audio_file

app = typer.Typer()


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
    ix, added, left_out = build_index(
        checkpoint,
        manifest,
        out,
        command_settings(ctx),
        kind=kind,
        allow_skip=skip_missing,
        batch_size=batch_size,
        ef_search=ef_search,
    )
    typer.echo(
        f"index {out}: {len(ix)} clips ({added} added), {ix.meta['kind']} search, {ix.dim}-d"
    )
    # rows --skip-missing left out (missing audio or caption, undecodable audio): recorded
    record = out / "left_out.csv"
    if len(left_out):
        write_table(record, left_out)
    else:
        record.unlink(missing_ok=True)
    finish(len(left_out), str(record))


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
    settings = command_settings(ctx)
    searcher = Searcher(
        index_dir, checkpoint, device=settings.resolved_device(), ef_search=ef_search
    )
    if looks_like_audio_file(query):
        similar, captions = searcher.search_audio(query, k)
        if as_json:
            typer.echo(
                json.dumps(
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
            json.dumps(
                {"query": query, "kind": "text", "results": [r.to_json() for r in results]},
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for r in results:
        typer.echo(f"{r.rank:3d}  {r.score:+.4f}  {r.clip_id}  {r.caption}  {r.audio_path}")

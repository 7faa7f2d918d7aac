"""``fsclap serve``: the style-search page and HTTP API (fsclap/web/) over an index."""

from __future__ import annotations

from pathlib import Path

import typer

from fsclap.cli.common import command_settings
from fsclap.web import check_bind, create_app
from fsclap.web import serve as run_server
from fsclap.web.models import Limits

app = typer.Typer()


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
    check_bind(host, token)  # before loading the settings, the index and the model
    settings = command_settings(ctx)
    app_ = create_app(
        index_dir,
        checkpoint=checkpoint,
        device=settings.resolved_device(),
        token=token,
        limits=Limits(max_upload_bytes=max_upload_mb * 2**20),
    )
    run_server(app_, host, port, token=token)

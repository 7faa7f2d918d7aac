"""Prefect artifacts of the flows: a Markdown summary per run, tables, and plots.

Plots are PNG files on the data volume; the UI cannot reach that volume, so each plot is sent
as an image artifact whose URL is the PNG itself (a ``data:`` URI), and the Markdown names the
file. Artifact keys are stable per flow, so the UI's Artifacts page shows the latest version
of each with its history.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fsclap.log import get_logger

log = get_logger("flows.artifacts")

#: PNGs larger than this are linked by path only (artifacts live in the Prefect database).
MAX_INLINE_PNG_BYTES = 2_000_000


def artifact_key(*parts: str) -> str:
    """A valid artifact key (lowercase letters, digits, dashes) from free text."""
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    return key[:100] or "fsclap"


def png_data_uri(path: str | Path) -> str | None:
    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_INLINE_PNG_BYTES:
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown(key: str, text: str, description: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=text, key=key, description=description)


def table(key: str, rows: list[dict[str, Any]], description: str) -> None:
    from prefect.artifacts import create_table_artifact

    create_table_artifact(
        table=[{k: _cell(v) for k, v in row.items()} for row in rows],
        key=key,
        description=description,
    )


def images(prefix: str, paths: Iterable[str | Path], description: str) -> list[str]:
    """One image artifact per PNG (key ``<prefix>-<file stem>``); returns the keys created."""
    from prefect.artifacts import create_image_artifact

    keys = []
    for path in paths:
        uri = png_data_uri(path)
        if uri is None:
            log.info("plot %s not attached (missing or over %d bytes)", path, MAX_INLINE_PNG_BYTES)
            continue
        key = artifact_key(prefix, Path(path).stem)
        create_image_artifact(
            image_url=uri, key=key, description=f"{description}: {Path(path).name} ({path})"
        )
        keys.append(key)
    return keys


def _cell(value: Any) -> Any:
    """Table cells the API stores as JSON (NaN is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _cell(value.item())
        except (AttributeError, ValueError):
            return str(value)
    return value


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_none_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_escape(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def _escape(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")

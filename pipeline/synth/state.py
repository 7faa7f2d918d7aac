"""The settings a generated folder was made with, so a rerun resumes it and never mixes two corpora."""

from __future__ import annotations

import json
from pathlib import Path

from fsclap.errors import FsclapError
from fsclap.io import write_json


def claim_folder(out_dir: Path, state_file: str, settings: dict, what: str) -> None:
    """Create ``out_dir`` and record ``settings`` in it; refuse a folder made with other settings."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FsclapError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FsclapError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    path = out_dir / state_file
    if path.is_file():
        have = json.loads(path.read_text())
        diff = ", ".join(
            f"{k}={have.get(k)} (now {settings[k]})" for k in settings if have.get(k) != settings[k]
        )
        if diff:
            raise FsclapError(
                f"{out_dir} holds {what} made with other settings: {diff}; "
                "use another --out folder or delete it"
            )
    write_json(path, settings)

"""The lock file: what ``fsclap models pull`` installed, with the size and SHA-256 of every file.

``<models_dir>/fsclap-models.lock.json``::

    {"version": 1,
     "models": {"sensevoice": {"id": "sensevoice", "source": "modelscope", "repo": "iic/SenseVoiceSmall",
                               "revision": "master", "path": "sensevoice", "pulled": "2025-...Z",
                               "via": "network" | "cache <dir>" | "local files",
                               "files": {"model.pt": {"size": 936291369, "sha256": "...", "mtime_ns": ...}}}}}

``path`` is relative to the models root when the model lives inside it. Checks compare by file name
inside the model's folder, so a folder moved elsewhere (``model_paths.<id>``) still matches its entry.
``mtime_ns`` lets ``fsclap models list`` skip re-hashing files that did not change since they were
hashed; ``fsclap models verify`` always re-hashes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fsclap.errors import FsclapError
from fsclap.io import sha256_file, write_json

LOCK_VERSION = 1
# download leftovers and tool metadata, never part of a model
_SKIP_SUFFIXES = (".part", ".incomplete", ".parallel_tmp", ".lock", ".tmp")


def model_files(folder: Path) -> list[str]:
    """Files of a model folder, relative and sorted (hidden entries and download leftovers skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or path.name.endswith(_SKIP_SUFFIXES):
            continue
        if path.is_file():
            out.append(rel.as_posix())
    return sorted(out)


def file_record(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "sha256": sha256_file(path), "mtime_ns": stat.st_mtime_ns}


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class FileProblem:
    file: str
    kind: str  # missing | size | checksum
    message: str


def check_files(entry: dict, folder: Path, quick: bool = False) -> list[FileProblem]:
    """Compare a model folder with its lock entry. ``quick``: trust files whose size and mtime
    are unchanged since they were hashed (what ``models list`` uses; ``verify`` re-hashes)."""
    problems = []
    for rel, locked in sorted((entry.get("files") or {}).items()):
        path = Path(folder) / rel
        if not path.is_file():
            problems.append(
                FileProblem(rel, "missing", f"{rel} is missing (locked at {locked['size']} bytes)")
            )
            continue
        stat = path.stat()
        if stat.st_size != locked["size"]:
            problems.append(
                FileProblem(
                    rel, "size", f"{rel} is {stat.st_size} bytes, the lock says {locked['size']}"
                )
            )
            continue
        if quick and stat.st_mtime_ns == locked.get("mtime_ns"):
            continue
        actual = sha256_file(path)
        if actual != locked["sha256"]:
            problems.append(
                FileProblem(
                    rel,
                    "checksum",
                    f"checksum mismatch in {rel}: sha256 {actual[:12]}… "
                    f"but the lock says {locked['sha256'][:12]}…",
                )
            )
    return problems


class ModelLock:
    """Read/update the lock file; every update is re-read, merged and written atomically."""

    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)

    def read(self) -> dict:
        if not self.path.is_file():
            return {"version": LOCK_VERSION, "models": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FsclapError(
                f"model lock file {self.path} is not valid JSON ({exc}); delete it and run "
                "'fsclap models pull' again"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise FsclapError(
                f"model lock file {self.path} has no 'models' mapping; delete it and pull again"
            )
        return data

    def entry(self, model_id: str) -> dict | None:
        return self.read()["models"].get(model_id)

    def record(self, model_id: str, folder: Path, files: list[str], **fields) -> dict:
        """Hash ``files`` (relative to ``folder``) and store them as ``model_id``'s entry."""
        folder = Path(folder)
        entry = {
            "id": model_id,
            **fields,
            "path": self.relative(folder),
            "pulled": now_utc(),
            "files": {rel: file_record(folder / rel) for rel in files},
        }
        with self._guard:
            data = self.read()
            data["version"] = LOCK_VERSION
            data["models"][model_id] = entry
            data["models"] = dict(sorted(data["models"].items()))
            write_json(self.path, data)
        return entry

    def relative(self, folder: Path) -> str:
        folder = Path(folder).expanduser().absolute()
        try:
            return folder.relative_to(self.path.parent.expanduser().absolute()).as_posix()
        except ValueError:
            return str(folder)

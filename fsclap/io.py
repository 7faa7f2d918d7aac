"""Atomic file writes: a killed run never leaves a half-written manifest, clip or checkpoint."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)  # read the process umask once (os.umask can only read it by setting it)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The new content is fsync'd before the rename and the folder after it, so a power cut leaves
    the old file or the new one, never an empty or half-written one under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent
    )
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the result ordinary permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


class UnsafeFile(Exception):
    """A file that :func:`load_tensors` refused: not tensors and plain values, or damaged. The
    message is one line (callers put it into their own one-line error)."""


def load_tensors(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` of tensors and plain values only (``weights_only``): a file from elsewhere
    must not run code when it is read. Raises :class:`UnsafeFile` with the reason in one line."""
    import torch  # only the callers that read such files pay for torch

    try:
        return torch.load(str(path), map_location="cpu", mmap=mmap, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError) as exc:
        detail = " ".join(str(exc).split())
        if "WeightsUnpickler error:" in detail:  # torch's advice around it is not the reason
            detail = detail[detail.find("WeightsUnpickler error:") :]
        raise UnsafeFile(detail[:160]) from None


def parquet_problem(exc: BaseException, path: str | Path) -> str:
    """Why pyarrow could not read the Parquet file ``path``: one line, without the path it repeats
    (callers name the file themselves)."""
    detail = " ".join(str(exc).split()).replace(f"'{path}'", "").replace(str(path), "")
    return detail.replace("Could not open Parquet input source :", "").strip(" :")


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. a folder on a platform that cannot open one
        return
    try:
        os.fsync(fd)
    except OSError:  # file systems without fsync for folders
        pass
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def write_parquet(path: str | Path, frame) -> Path:
    """Write a pandas DataFrame as Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def write_table(path: str | Path, frame) -> Path:
    """Parquet or CSV by suffix, atomically."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        return path
    return write_parquet(path, frame)


def sha256_file(path: str | Path, block_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in blocks (content keys for resume and caching)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()

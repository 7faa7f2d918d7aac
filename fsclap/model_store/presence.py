"""Is a model on disk? Answered by the files its declared loader reads, so "present" means "the
loader finds every file it reads" (Demucs bag + weights, FunASR's ``required_files``, SenseVoice's
files, the LAION-CLAP layouts ``load_clap`` accepts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fsclap.config import Settings
from fsclap.errors import FsclapError
from fsclap.model_store.loaders import model_loader
from fsclap.model_store.lock import model_files
from fsclap.model_store.registry import MODELS


@dataclass
class Presence:
    ok: bool
    folder: Path  # the folder the lock's file names are relative to
    files: list[str] = field(
        default_factory=list
    )  # every file of the model (what the lock records)
    missing: list[str] = field(default_factory=list)
    message: str = ""


def required_files(model_id: str, path: Path, settings: Settings) -> dict[str, Path]:
    """role -> file the loader of ``model_id`` reads from ``path`` (raises FsclapError for a broken config)."""
    return model_loader(model_id).files(Path(path), settings)


def presence(model_id: str, path: Path, settings: Settings) -> Presence:
    """Whether every file the loader reads is there, and the files the model folder holds."""
    spec = MODELS[model_id]
    path = Path(path).expanduser()
    if spec.source == "wheel":
        ok = path.exists()
        return Presence(
            ok,
            path.parent if path.is_file() else path,
            [],
            [] if ok else [str(path)],
            "" if ok else f"{path} not found (reinstall {spec.package})",
        )
    folder = path.parent if path.is_file() else path
    if not path.exists():
        return Presence(False, folder, [], [str(path)], f"{path} does not exist")
    loader = model_loader(model_id)
    try:
        needed = loader.files(path, settings)
    except FsclapError as exc:
        return Presence(False, folder, model_files(folder), [], str(exc))
    missing = [p for p in needed.values() if not p.is_file()]
    files = model_files(folder)
    if (
        path.is_file()
    ):  # a checkpoint file given directly: the model is that file and its companions
        keep = {p.relative_to(folder).as_posix() for p in needed.values() if p.is_file()}
        files = [f for f in files if f in keep or f.split("/")[0] in loader.companions]
    message = ""
    if missing:
        names = ", ".join(_rel(p, folder) for p in missing)
        message = f"missing {names} in {folder}"
    return Presence(not missing, folder, files, [_rel(p, folder) for p in missing], message)


def _rel(path: Path, folder: Path) -> str:
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return str(path)

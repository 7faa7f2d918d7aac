"""Is a model on disk? Answered by the stages' own file checks, so "present" means "the loader
finds every file it reads" (Demucs bag + weights, FunASR's ``required_files``, SenseVoice's files,
the LAION-CLAP layouts ``load_clap`` accepts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fsclap.errors import FsclapError, MissingModelError
from fsclap.weights.lock import model_files
from fsclap.weights.registry import MODELS, demucs_model_name
from model.backbones.laion_clap_layout import ORIGINAL_CHECKPOINT, TOKENIZER_DIRS
from pipeline.diarize.funasr_backend import required_files as funasr_required
from pipeline.emotion import sensevoice_files
from pipeline.separate import demucs_weight_files

FUNASR_IDS = ("paraformer", "fsmn_vad", "ct_punc", "campplus")


@dataclass
class Presence:
    ok: bool
    folder: Path  # the folder the lock's file names are relative to
    files: list[str] = field(
        default_factory=list
    )  # every file of the model (what the lock records)
    missing: list[str] = field(default_factory=list)
    message: str = ""


def required_files(model_id: str, path: Path, settings) -> dict[str, Path]:
    """role -> file the loader of ``model_id`` reads from ``path`` (raises FsclapError for a broken config)."""
    path = Path(path)
    if model_id == "demucs":
        name = demucs_model_name(settings)
        bag = path / f"{name}.yaml"
        if not bag.is_file():
            return {"bag": bag}
        try:
            _, weights = demucs_weight_files(path, name)
        except MissingModelError as exc:  # the first weights file the bag names that is not there
            return {"bag": bag, "weights": Path(exc.path)}
        return {"bag": bag, **{f"weights {w.name}": w for w in weights}}
    if model_id in FUNASR_IDS:
        return funasr_required(path)
    if model_id == "sensevoice":
        return sensevoice_files(path)
    if model_id == "laion_clap":
        return clap_files(path)
    raise KeyError(model_id)


def clap_files(path: Path) -> dict[str, Path]:
    """The files ``model.backbones.laion_clap.load_clap`` reads from ``path`` (same precedence:
    a transformers folder when it has ``config.json``, else the original checkpoint + tokenizer)."""
    path = Path(path)
    if path.is_dir() and (path / "config.json").is_file():
        weights = [
            path / n
            for n in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
        ]
        tokenizer = [path / n for n in ("tokenizer.json", "vocab.json")]
        return {
            "config": path / "config.json",
            "weights": next((w for w in weights if w.is_file()), weights[0]),
            "tokenizer": next((t for t in tokenizer if t.is_file()), tokenizer[0]),
        }
    checkpoint = path / ORIGINAL_CHECKPOINT if path.is_dir() or not path.suffix else path
    files = {"checkpoint": checkpoint}
    folders = [checkpoint.parent / name for name in TOKENIZER_DIRS]
    folder = next(
        (f for f in folders if (f / "tokenizer.json").is_file() or (f / "vocab.json").is_file()),
        folders[0],
    )
    if (folder / "tokenizer.json").is_file():
        files["tokenizer"] = folder / "tokenizer.json"
    else:
        files["tokenizer vocab"] = folder / "vocab.json"
        files["tokenizer merges"] = folder / "merges.txt"
    return files


def presence(model_id: str, path: Path, settings) -> Presence:
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
    try:
        needed = required_files(model_id, path, settings)
    except FsclapError as exc:
        return Presence(False, folder, model_files(folder), [], str(exc))
    missing = [p for p in needed.values() if not p.is_file()]
    files = model_files(folder)
    if path.is_file():  # a checkpoint file given directly: the model is that file and its tokenizer
        keep = {p.relative_to(folder).as_posix() for p in needed.values() if p.is_file()}
        files = [
            f
            for f in files
            if f in keep
            or f.split("/")[0] in ("roberta-base", "tokenizer")
            or f == "clap_config.json"
        ]
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

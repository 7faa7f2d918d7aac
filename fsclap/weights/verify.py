"""``fsclap models verify`` and :func:`verify_models`: presence, checksums, and a real load.

For each model: (1) every file its loader reads is there; (2) every file recorded in the lock file
has its size and SHA-256 (wheel-shipped models: the hashes in their wheel's RECORD); (3) it loads
through the project's own loader (the same code the stages run) and runs a short forward pass on
near-silence (1 s of -80 dBFS noise; ct-punc, a text model, punctuates a short sentence). Each
failure is one line naming the model and the file or step that failed.

The corpus builder calls :func:`verify_stage_models` before any work, so a worker never discovers
a missing or corrupt model in the middle of a run.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fsclap import offline_models
from fsclap.errors import FsclapError
from fsclap.log import get_logger
from fsclap.weights.local import presence, required_files
from fsclap.weights.lock import ModelLock, check_files
from fsclap.weights.registry import MODELS, locate, lock_path, model_ids
from pipeline.diarize.funasr_backend import load_funasr_model, quiet_funasr
from pipeline.emotion import SenseVoiceTagger
from pipeline.separate import DemucsBackend, SeparateConfig

log = get_logger("weights.verify")


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
    settings,
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
    settings,
    model_id: str,
    lock: ModelLock,
    *,
    load: bool = True,
    checksums: bool = True,
    device: str = "cpu",
) -> ModelCheck:
    spec = MODELS[model_id]
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
        problems = wheel_problems(spec) if spec.source == "wheel" else None
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
                check.detail = smoke_test(settings, model_id, where.path, device)
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


def weight_files(settings, model_id: str, path: Path, folder: Path) -> set[str]:
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


def verify_stage_models(settings, stages) -> VerifyReport | None:
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


def wheel_problems(spec) -> list[str]:
    """Compare the model files of a wheel with the SHA-256 its RECORD lists (what pip installed)."""
    import base64
    import hashlib
    import importlib.metadata as md

    try:
        dist = md.distribution(spec.package)
    except md.PackageNotFoundError:
        return [f"package {spec.package} is not installed"]
    wanted = (".jit", ".pt", ".safetensors", ".onnx", ".json", ".txt")
    problems = []
    for record in dist.files or []:
        name = str(record)
        if (
            ".dist-info" in name
            or not name.endswith(wanted)
            or record.hash is None
            or record.hash.mode != "sha256"
        ):
            continue
        if spec.id == "silero_vad" and not name.endswith("silero_vad.jit"):
            continue  # the loader reads this one file
        path = Path(record.locate())
        if not path.is_file():
            problems.append(f"{name} is missing from the installed {spec.package} (reinstall it)")
            continue
        digest = hashlib.sha256(path.read_bytes()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != record.hash.value:
            problems.append(
                f"checksum mismatch in {name} (differs from the {spec.package} wheel's RECORD; reinstall it)"
            )
    return problems


# --- loading each model through the project's own loader ----------------------------------------


def near_silence(seconds: float, rate: int, channels: int = 0, seed: int = 0) -> np.ndarray:
    """``seconds`` of -80 dBFS white noise: silence that keeps every front end's log/normalisation finite."""
    shape = (channels, int(seconds * rate)) if channels else (int(seconds * rate),)
    return (np.random.default_rng(seed).standard_normal(shape) * 1e-4).astype(np.float32)


def _finite(value, what: str) -> None:
    import torch

    array = (
        value.detach().float().cpu().numpy()
        if isinstance(value, torch.Tensor)
        else np.asarray(value)
    )
    if not np.isfinite(array).all():
        raise FsclapError(f"{what} is not finite on silence (NaN/inf weights?)")


def smoke_test(settings, model_id: str, path: Path, device: str) -> str:
    """Load ``model_id`` the way its stage does and run it once; returns what it produced."""
    if model_id == "demucs":
        config = SeparateConfig(**{**(settings.stages.get("separate") or {}), "method": "demucs"})
        backend = DemucsBackend(config, Path(path), device, settings.seed)
        backend.load()
        out = backend(near_silence(1.0, 44100, channels=2), 0.0, 1.0)
        _finite(out["vocals"], "Demucs vocals")
        return f"{config.model}: {len(backend.model.sources)} sources, 1 s separated"
    if model_id in ("paraformer", "fsmn_vad", "ct_punc", "campplus"):
        model = load_funasr_model(model_id, Path(path), device)
        with quiet_funasr():
            if model_id == "ct_punc":
                result = model.generate(input="今天天气很好我们出去走走吧", disable_pbar=True)
                return f"punctuated: {result[0].get('text', '')[:24]!r}"
            result = model.generate(input=near_silence(1.0, 16000), disable_pbar=True)
        if model_id == "campplus":
            embedding = result[0]["spk_embedding"]
            _finite(embedding, "CAM++ embedding")
            return f"{embedding.shape[-1]}-d speaker embedding"
        if model_id == "fsmn_vad":
            return f"{len(result[0].get('value') or [])} speech region(s) on silence"
        return f"transcript on silence: {str(result[0].get('text', ''))[:24]!r}"
    if model_id == "sensevoice":
        tags = SenseVoiceTagger(path, device=device).tag([near_silence(1.0, 16000)])[0]
        return f"emotion {tags.emotion}, events {tags.events_text or '-'}"
    if model_id == "laion_clap":
        import torch

        # stays inside the function: the backbone is a torch module, and importing fsclap.weights
        # (the runner's preflight, every `fsclap models` command) must not load torch
        from model.backbones.laion_clap import LaionClapBackbone

        backbone = LaionClapBackbone.build(path).to(device).eval()
        with torch.no_grad():
            audio_in = backbone.audio_preprocessor.collate(
                [backbone.audio_preprocessor(near_silence(1.0, backbone.sample_rate))]
            )
            audio = backbone.encode_audio({k: v.to(device) for k, v in audio_in.items()})
            text_in = backbone.text_preprocessor(["a woman speaking slowly with a low voice"])
            text = backbone.encode_text({k: v.to(device) for k, v in text_in.items()})
        _finite(audio.tokens, "CLAP audio features")
        _finite(text.tokens, "CLAP text features")
        return f"audio {tuple(audio.tokens.shape[1:])} / text {tuple(text.tokens.shape[1:])} token features"
    if model_id in ("silero_vad", "resemblyzer", "minilm"):
        return wheel_smoke_test(model_id, device)
    raise KeyError(model_id)


def wheel_smoke_test(model_id: str, device: str) -> str:
    if model_id == "silero_vad":
        import torch
        from silero_vad import get_speech_timestamps

        stamps = get_speech_timestamps(
            torch.from_numpy(near_silence(1.0, 16000)),
            offline_models.load_silero_vad(),
            sampling_rate=16000,
        )
        return f"{len(stamps)} speech region(s) on silence"
    if model_id == "resemblyzer":
        embedding = offline_models.load_resemblyzer(
            "cpu" if device.startswith("cpu") else device
        ).embed_utterance(near_silence(1.0, 16000))
        _finite(embedding, "resemblyzer embedding")
        return f"{embedding.shape[0]}-d speaker embedding"
    vector = offline_models.load_minilm(device).encode(["a woman speaking slowly"])
    _finite(vector, "MiniLM embedding")
    return f"{vector.shape[1]}-d text embedding"

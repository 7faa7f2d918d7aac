"""Stage ``separate``: the vocal track of each episode, ``DIR/vocals/<drama>/<episode id>.flac``.

Methods (``stages.separate.method``; the manifest's ``separation`` column says which one ran):

* ``demucs`` — the paper profile's default: Demucs ``htdemucs`` loaded from a local model repo
  (``Settings.model_path("demucs")``: ``htdemucs.yaml`` + ``955717e8-8726e21a.th``), two stems:
  vocals and the sum of the other sources (``--two-stems vocals``). Missing weights fail the run
  before any work with the file that is missing and how to get it; there is no fallback.
* ``none`` — the offline profile's default: no separation; the extracted audio is the vocal
  track (recorded as ``separation=none``).
* ``repet`` — a classical alternative: REPET-SIM (librosa's nearest-neighbour filtering of the
  magnitude spectrogram + soft masks), which removes *repeating* background such as music beds.

Long episodes are processed in chunks (``chunk_s``, default 60 s) that overlap by ``overlap_s``
and are joined with a linear cross-fade, read from and written to disk incrementally, so memory
stays bounded by the chunk size, not the episode length. Demucs normalises by the mean/std of
the whole track's mono mix (as ``demucs.separate`` does), computed in a streaming pass at
extraction, so every chunk is scaled the same way. Runs on the GPU when the device is CUDA.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import soundfile as sf
from pydantic import Field, model_validator

from fsclap.audio import audio_stats
from fsclap.config import Settings
from fsclap.errors import FsclapError, MissingModelError
from fsclap.io import atomic_path, sha256_file
from fsclap.log import get_logger, progress
from fsclap.model_store.loaders import ModelLoader, check_finite, declare_loader, near_silence
from fsclap.model_store.registry import demucs_model_name
from pipeline.stage import Stage, StageConfig, StageError, clear_stale_temporaries, short_hash
from pipeline.tables import Episode

log = get_logger("pipeline.separate")
Method = Literal["demucs", "repet", "none"]
# Input each method needs: (sample rate, channels). Every released Demucs model is 44.1 kHz stereo.
INPUT_FORMATS: dict[str, tuple[int, int]] = {
    "demucs": (44100, 2),
    "repet": (16000, 1),
    "none": (16000, 1),
}


class SeparationFailed(StageError):
    """The separator could not process this episode."""


class SeparateConfig(StageConfig):
    operational: ClassVar[frozenset[str]] = frozenset({"workers", "model_path"})

    method: Method = Field(
        "none", description="demucs (paper) | none | repet (offline alternatives)."
    )
    model: str = Field("htdemucs", description="Demucs model (bag) name in the local repo.")
    model_path: Path | None = Field(
        None, description="Demucs local repo; default Settings.model_path('demucs')."
    )
    stem: str = "vocals"
    chunk_s: float = Field(60.0, ge=1.0, description="Audio processed at once (bounds memory).")
    overlap_s: float = Field(
        5.0, ge=0.1, description="Overlap of consecutive chunks, cross-faded linearly."
    )
    shifts: int = Field(
        0, ge=0, description="Demucs random time shifts averaged (0: deterministic)."
    )
    split_overlap: float = Field(
        0.25, ge=0.0, lt=1.0, description="Overlap of Demucs' own segments."
    )
    format: Literal["flac", "wav"] = "flac"
    keep_accompaniment: bool = Field(
        False, description="Also write the non-vocal stem to DIR/accompaniment/."
    )
    workers: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _overlap_below_chunk(self) -> SeparateConfig:
        if self.overlap_s * 2 > self.chunk_s:
            raise ValueError(
                f"overlap_s ({self.overlap_s}) must be at most half of chunk_s ({self.chunk_s})"
            )
        return self


# --- chunked processing ---------------------------------------------------------------------

ChunkFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def chunk_count(total: int, chunk: int, overlap: int) -> int:
    return 1 if total <= chunk else 1 + math.ceil((total - chunk) / (chunk - overlap))


def separate_in_chunks(
    source: Path,
    targets: dict[str, Path],
    fn: ChunkFn,
    chunk_s: float,
    overlap_s: float,
    subtype: str = "PCM_16",
    desc: str = "",
    align: int = 1,
) -> dict[str, int]:
    """Run ``fn`` over ``source`` chunk by chunk and write each of its outputs to ``targets``.

    ``fn`` maps a ``(channels, frames)`` float32 block to ``{name: (out_channels, frames)}``.
    Chunk k covers ``[k*hop, k*hop + chunk)`` with ``hop = chunk - overlap``; the overlapping
    ``overlap`` frames of consecutive chunks are blended with a linear cross-fade. ``align``
    rounds ``hop`` down to a multiple of it (the overlap grows to match): Demucs cuts its input
    into segments every ``stride`` frames, and chunks that start on that grid see the same
    segments as one pass over the whole file, so chunking changes the result only near chunk
    edges. Every target is written atomically. Returns the frames written per target.
    """
    info = sf.info(str(source))
    rate, total = info.samplerate, info.frames
    chunk = max(int(round(chunk_s * rate)), 1)
    overlap = min(max(int(round(overlap_s * rate)), 1), chunk // 2)
    hop = chunk - overlap
    if align > 1:
        if hop < align:
            raise FsclapError(
                f"chunk_s - overlap_s must be at least the separator's segment stride ({align / rate:.2f} s)"
            )
        hop = hop // align * align
        overlap = chunk - hop
    written = {name: 0 for name in targets}
    fmt = {"flac": "FLAC", "wav": "WAV"}
    with ExitStack() as stack, sf.SoundFile(str(source)) as reader:
        for path in targets.values():
            clear_stale_temporaries(path)
        tmps = {name: stack.enter_context(atomic_path(path)) for name, path in targets.items()}
        writers: dict[str, sf.SoundFile] = {}
        tails: dict[str, np.ndarray] = {}
        n_chunks = chunk_count(total, chunk, overlap)
        for index in progress(
            range(n_chunks), desc=desc or "separate", total=n_chunks, unit="chunk"
        ):
            start = index * hop
            reader.seek(start)
            block = reader.read(min(chunk, total - start), dtype="float32", always_2d=True).T
            length = block.shape[1]
            last = start + chunk >= total
            outputs = fn(np.ascontiguousarray(block))
            for name, out in outputs.items():
                if name not in targets:
                    continue
                out = np.asarray(out, dtype=np.float32)
                if out.ndim == 1:
                    out = out[None]
                if out.shape[1] != length:
                    raise SeparationFailed(
                        f"separator returned {out.shape[1]} frames for a {length}-frame chunk"
                    )
                if name in tails:
                    tail = tails.pop(name)
                    fade = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
                    out[:, :overlap] = tail * (1.0 - fade) + out[:, :overlap] * fade
                keep = length if last else length - overlap
                if name not in writers:
                    writers[name] = stack.enter_context(
                        sf.SoundFile(
                            str(tmps[name]),
                            "w",
                            samplerate=rate,
                            channels=out.shape[0],
                            subtype=subtype,
                            format=fmt[targets[name].suffix.lstrip(".").lower()],
                        )
                    )
                writers[name].write(np.clip(out[:, :keep], -1.0, 1.0).T)
                written[name] += keep
                if not last:
                    tails[name] = out[:, keep:length].copy()
        for writer in writers.values():
            writer.close()
    return written


# --- backends -------------------------------------------------------------------------------


def demucs_hint(name: str, repo: Path) -> str:
    """Where the files of a released Demucs model come from."""
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    bag = REMOTE_ROOT / f"{name}.yaml"
    urls: list[str] = []
    if bag.exists():
        import yaml

        remote = _parse_remote_files(REMOTE_ROOT / "files.txt")
        urls = [remote[sig] for sig in yaml.safe_load(bag.read_text())["models"] if sig in remote]
    parts = []
    if urls:
        parts.append(f"download {', '.join(urls)} into {repo}")
    if bag.exists():
        parts.append(f"copy {bag} there too")
    parts.append("or set model_paths.demucs (FSCLAP_MODEL_PATHS__DEMUCS) to a folder holding them")
    return "; ".join(parts)


def demucs_weight_files(repo: Path, name: str) -> tuple[Path, list[Path]]:
    """The bag file and weight files of model ``name`` in a local Demucs repo; raises
    :class:`MissingModelError` naming the first missing file."""
    import yaml

    hint = demucs_hint(name, repo)
    bag = repo / f"{name}.yaml"
    if not bag.is_file():
        raise MissingModelError(f"Demucs model file {name}.yaml", bag, hint)
    try:
        signatures = list(yaml.safe_load(bag.read_text())["models"])
    except Exception as exc:  # noqa: BLE001 - any parse problem is reported the same way
        raise FsclapError(
            f"Demucs model file {bag} is not a valid bag file (needs 'models: [...]'): {exc}"
        ) from None
    weights = []
    for sig in signatures:
        found = sorted(
            p for p in repo.glob(f"{sig}*.th") if p.stem == sig or p.stem.startswith(f"{sig}-")
        )
        if not found:
            from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

            remote = _parse_remote_files(REMOTE_ROOT / "files.txt").get(sig)
            expected = remote.rsplit("/", 1)[-1] if remote else f"{sig}.th"
            raise MissingModelError(
                f"Demucs weights {expected} (model {name})", repo / expected, hint
            )
        weights.append(found[0])
    return bag, weights


class DemucsBackend:
    """Demucs through its Python API: ``get_model(name, repo=local)`` + ``apply_model``."""

    def __init__(self, config: SeparateConfig, repo: Path, device: str, seed: int):
        self.config = config
        self.repo = Path(repo).expanduser()
        self.device = device
        self.seed = seed
        self.model = None
        self.stem_index = 0
        self._identity: dict | None = None
        self._lock = threading.Lock()
        self.label = config.model

    def check(self) -> None:
        demucs_weight_files(self.repo, self.config.model)

    def identity(self) -> dict:
        if self._identity is None:
            bag, weights = demucs_weight_files(self.repo, self.config.model)
            # weight files are named <sig>-<sha256 prefix>.th, so their names identify the weights
            self._identity = {
                "model": self.config.model,
                "bag": short_hash(bag.read_text()),
                "weights": [w.name for w in weights],
            }
        return self._identity

    def describe(self) -> str:
        weights = ",".join(self.identity()["weights"])
        return f"{self.config.model}:{weights}"

    def load(self) -> None:
        from demucs.pretrained import ModelLoadingError, get_model

        self.check()
        try:
            model = get_model(self.config.model, repo=self.repo)
        except ModelLoadingError as exc:
            raise FsclapError(
                f"cannot load Demucs {self.config.model} from {self.repo}: {exc}"
            ) from None
        if self.config.stem not in model.sources:
            raise FsclapError(
                f"Demucs {self.config.model} has no stem {self.config.stem!r} (it has {', '.join(model.sources)})"
            )
        if (model.samplerate, model.audio_channels) != INPUT_FORMATS["demucs"]:
            raise FsclapError(
                f"Demucs {self.config.model} works at {model.samplerate} Hz / {model.audio_channels} channels; "
                "only 44.1 kHz stereo models (all released Demucs models) are supported"
            )
        model.to(self.device)
        model.eval()
        self.model = model
        self.stem_index = model.sources.index(self.config.stem)

    def stride_frames(self) -> int:
        """Frames between the starts of the segments ``apply_model`` cuts (first model of a bag)."""
        from demucs.apply import BagOfModels

        inner = self.model.models[0] if isinstance(self.model, BagOfModels) else self.model
        segment_length = int(inner.samplerate * float(inner.segment))
        return max(int((1 - self.config.split_overlap) * segment_length), 1)

    def __call__(self, block: np.ndarray, mean: float, std: float) -> dict[str, np.ndarray]:
        import torch
        from demucs.apply import apply_model

        mix = torch.from_numpy((block - mean) / std)[None]
        with self._lock, torch.no_grad():
            if self.config.shifts:
                random.seed(self.seed)
            out = apply_model(
                self.model,
                mix,
                shifts=self.config.shifts,
                split=True,
                overlap=self.config.split_overlap,
                progress=False,
                device=self.device,
                num_workers=0,
            )[0]
        vocals = out[self.stem_index]
        rest = out.sum(dim=0) - vocals
        return {
            "vocals": (vocals * std + mean).cpu().numpy(),
            "accompaniment": (rest * std + mean).cpu().numpy(),
        }


def demucs_files(repo: Path, settings: Settings) -> dict[str, Path]:
    """role -> file the Demucs loader reads from a local repo: the bag of the configured model
    (``stages.separate.model``), then its weights (up to the first one that is missing)."""
    name = demucs_model_name(settings)
    bag = repo / f"{name}.yaml"
    if not bag.is_file():
        return {"bag": bag}
    try:
        _, weights = demucs_weight_files(repo, name)
    except MissingModelError as exc:  # the first weights file the bag names that is not there
        return {"bag": bag, "weights": Path(exc.path)}
    return {"bag": bag, **{f"weights {w.name}": w for w in weights}}


def demucs_smoke_test(repo: Path, settings: Settings, device: str) -> str:
    """Load Demucs as the stage does and separate 1 s of near-silence."""
    config = SeparateConfig(**{**(settings.stages.get("separate") or {}), "method": "demucs"})
    backend = DemucsBackend(config, Path(repo), device, settings.seed)
    backend.load()
    out = backend(near_silence(1.0, INPUT_FORMATS["demucs"][0], channels=2), 0.0, 1.0)
    check_finite(out["vocals"], "Demucs vocals")
    return f"{config.model}: {len(backend.model.sources)} sources, 1 s separated"


declare_loader(ModelLoader("demucs", files=demucs_files, smoke_test=demucs_smoke_test))


class RepetBackend:
    """REPET-SIM (Rafii & Pardo 2012) as in librosa's vocal-separation example: the background
    is what repeats (median of each frame's most similar frames at least 2 s away)."""

    label = "repet"

    def __init__(
        self,
        sample_rate: int,
        n_fft: int = 1024,
        hop: int = 256,
        margin_v: float = 10.0,
        margin_i: float = 2.0,
    ):
        self.sample_rate, self.n_fft, self.hop = sample_rate, n_fft, hop
        self.margin_v, self.margin_i = margin_v, margin_i

    def identity(self) -> dict:
        return {
            "n_fft": self.n_fft,
            "hop": self.hop,
            "margin_v": self.margin_v,
            "margin_i": self.margin_i,
        }

    def describe(self) -> str:
        return "repet-sim"

    def __call__(
        self, block: np.ndarray, mean: float = 0.0, std: float = 1.0
    ) -> dict[str, np.ndarray]:
        import librosa

        mono = block.mean(axis=0)
        spec = librosa.stft(mono, n_fft=self.n_fft, hop_length=self.hop)
        magnitude = np.abs(spec)
        frames = magnitude.shape[1]
        width = min(
            int(librosa.time_to_frames(2.0, sr=self.sample_rate, hop_length=self.hop)),
            (frames - 1) // 2 - 1,
        )
        if width < 1:
            return {"vocals": mono[None], "accompaniment": np.zeros_like(mono)[None]}
        # a tiny floor keeps cosine similarity defined on digital silence
        repeating = librosa.decompose.nn_filter(
            magnitude + 1e-8, aggregate=np.median, metric="cosine", width=width
        )
        repeating = np.minimum(magnitude, repeating)
        residual = magnitude - repeating
        mask_vocals = librosa.util.softmask(residual, self.margin_v * repeating, power=2)
        mask_background = librosa.util.softmask(repeating, self.margin_i * residual, power=2)
        vocals = librosa.istft(mask_vocals * spec, hop_length=self.hop, length=len(mono))
        background = librosa.istft(mask_background * spec, hop_length=self.hop, length=len(mono))
        return {
            "vocals": vocals[None].astype(np.float32),
            "accompaniment": background[None].astype(np.float32),
        }


# --- the stage ------------------------------------------------------------------------------


class Separate(Stage):
    name = "separate"
    version = "1"
    Config = SeparateConfig
    done_status = "separated"

    def __init__(self, config=None, *, context, model_path: Path | None = None):
        super().__init__(config, context=context)
        method = self.config.method
        if method == "demucs":
            repo = self.config.model_path or model_path
            if repo is None:
                raise FsclapError(
                    "stages.separate: method demucs needs model_path (a local Demucs model repo)"
                )
            self.backend = DemucsBackend(self.config, Path(repo), context.device, context.seed)
        elif method == "repet":
            self.backend = RepetBackend(INPUT_FORMATS["repet"][0])
        else:
            self.backend = None

    @property
    def input_format(self) -> tuple[int, int]:
        """(sample rate, channels) this stage needs from extract."""
        return INPUT_FORMATS[self.config.method]

    def check(self) -> None:
        if isinstance(self.backend, DemucsBackend):
            self.backend.check()

    def models(self) -> list[str]:
        return ["demucs"] if isinstance(self.backend, DemucsBackend) else []

    def setup(self) -> None:
        if isinstance(self.backend, DemucsBackend):
            self.backend.load()
            stride_s = self.backend.stride_frames() / INPUT_FORMATS["demucs"][0]
            if self.config.chunk_s - self.config.overlap_s < stride_s:
                raise FsclapError(
                    f"stages.separate: chunk_s - overlap_s must be at least the segment stride of "
                    f"{self.config.model} ({stride_s:.2f} s)"
                )

    def extra_identity(self) -> dict:
        return {"backend": self.backend.identity()} if self.backend is not None else {}

    def input_hash(self, episode: Episode) -> str | None:
        return episode.audio_sha256 if episode.audio_path else None

    def target(self, kind: str, episode: Episode) -> Path:
        return self.context.layout.separated(
            kind, episode.drama_id, episode.episode_id, self.config.format
        )

    def outputs(self, episode: Episode) -> list[Path]:
        paths = [
            episode.vocals_path,
            episode.accompaniment_path if self.config.keep_accompaniment else "",
        ]
        if not episode.vocals_path:
            return [Path("/nonexistent")]
        return [self.context.abs(p) for p in paths if p]

    def process(self, episode: Episode) -> Episode:
        result = episode.copy()
        if self.backend is None:
            result.vocals_path = episode.audio_path
            result.vocals_sha256 = episode.audio_sha256
            result.accompaniment_path = None
            result.separation = "none"
            result.separation_model = None
            return result
        rate, channels = self.input_format
        if (episode.sample_rate, episode.channels) != (rate, channels):
            raise SeparationFailed(
                f"{episode.episode_id}: audio is {episode.sample_rate} Hz / {episode.channels} ch but {self.backend.label} "
                f"needs {rate} Hz / {channels} ch (leave stages.extract.sample_rate/channels unset)"
            )
        source = self.context.abs(episode.audio_path)
        mean, std = episode.mono_mean, episode.mono_std
        if mean is None or std is None:
            stats = audio_stats(source)
            mean, std = stats["mono_mean"], stats["mono_std"]
        std = float(std) + 1e-8
        targets = {"vocals": self.target("vocals", episode)}
        if self.config.keep_accompaniment:
            targets["accompaniment"] = self.target("accompaniment", episode)
        backend = self.backend
        align = backend.stride_frames() if isinstance(backend, DemucsBackend) else 1
        separate_in_chunks(
            source,
            targets,
            lambda block: backend(block, float(mean), std),
            self.config.chunk_s,
            self.config.overlap_s,
            desc=f"separate {episode.episode_id}",
            align=align,
        )
        result.vocals_path = self.context.rel(targets["vocals"])
        result.vocals_sha256 = sha256_file(targets["vocals"])
        result.accompaniment_path = (
            self.context.rel(targets["accompaniment"]) if "accompaniment" in targets else None
        )
        result.separation = backend.label
        result.separation_model = backend.describe()
        return result

"""Audio decoding and writing shared by every stage and the model's data loading.

WAV/FLAC/OGG are read with soundfile (seeking straight to a segment); everything else
(MP4, M4A, MP3, ...) is decoded by ffmpeg. Resampling uses soxr (high quality, deterministic).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from fsclap.errors import FsclapError
from fsclap.io import atomic_path

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif"}


class AudioError(FsclapError):
    """The file is missing, empty, corrupt or holds no audio."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"audio file not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")


def audio_duration(path: str | Path) -> float:
    """Duration in seconds (soundfile header, else ffprobe)."""
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            info = sf.info(str(path))
            return info.frames / float(info.samplerate)
        except RuntimeError as exc:
            raise AudioError(f"cannot read {path.name}: {str(exc).splitlines()[0]}") from None
    return float(ffprobe(path)["format"].get("duration") or 0.0)


def ffprobe(path: str | Path) -> dict:
    """ffprobe's JSON description of a media file."""
    import json

    if shutil.which("ffprobe") is None:
        raise FsclapError("ffprobe not found: install ffmpeg (apt-get install ffmpeg)")
    proc = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise AudioError(f"ffprobe cannot read {Path(path).name}: {reason}")
    return json.loads(proc.stdout)


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
    mono: bool = True,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` (optionally only ``[start_s, end_s)``) as float32.

    Returns ``(audio, sr)``: shape ``(samples,)`` when ``mono`` else ``(channels, samples)``;
    ``sr`` is ``sample_rate`` when given (resampled), else the file's rate.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        audio, sr = _load_soundfile(path, start_s, end_s)
    else:
        audio, sr = _load_ffmpeg(path, start_s, end_s, sample_rate)
    if audio.size == 0:
        raise AudioError(
            f"no audio samples in {path.name}"
            + (f" [{start_s}, {end_s})" if start_s is not None else "")
        )
    if mono:
        audio = audio.mean(axis=0)
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(audio, dtype=np.float32), sr


def load_bounded(path: str | Path, sample_rate: int, max_s: float) -> np.ndarray:
    """At most ``max_s`` seconds of ``path`` as mono float32 at ``sample_rate``, for input nobody
    vetted (uploads): ffmpeg mixes down and resamples while it decodes, so memory is bounded by
    ``max_s * sample_rate`` samples whatever the file's own rate, channels or length."""
    path = Path(path)
    _check_file(path)
    audio, _ = _load_ffmpeg(path, None, float(max_s), int(sample_rate))
    if audio.size == 0:
        raise AudioError(f"no audio samples in {path.name}")
    return np.ascontiguousarray(audio[0], dtype=np.float32)


def _load_soundfile(path: Path, start_s, end_s) -> tuple[np.ndarray, int]:
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            start = int(round((start_s or 0.0) * sr))
            stop = int(round(end_s * sr)) if end_s is not None else f.frames
            start = min(max(start, 0), f.frames)
            f.seek(start)
            data = f.read(max(stop - start, 0), dtype="float32", always_2d=True)
    except RuntimeError as exc:
        raise AudioError(f"cannot decode {path.name}: {str(exc).splitlines()[0]}") from None
    return data.T, sr


def _load_ffmpeg(path: Path, start_s, end_s, sample_rate) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None:
        raise FsclapError("ffmpeg not found: install it (apt-get install ffmpeg)")
    sr = sample_rate or int(_probe_audio_rate(path))
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if start_s:
        cmd += ["-ss", f"{start_s:.6f}"]
    cmd += ["-i", str(path)]
    if end_s is not None:
        cmd += ["-t", f"{end_s - (start_s or 0.0):.6f}"]
    cmd += ["-vn", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(sr), "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        reason = (proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[
            -1
        ]
        raise AudioError(f"ffmpeg cannot decode {path.name}: {reason}")
    return np.frombuffer(proc.stdout, dtype=np.float32)[None, :], sr


def _probe_audio_rate(path: Path) -> int:
    streams = [s for s in ffprobe(path).get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise AudioError(f"no audio stream in {path.name}")
    return int(streams[0].get("sample_rate") or 16000)


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample along the last axis."""
    if orig_sr == target_sr:
        return audio
    if audio.ndim == 1:
        return soxr.resample(audio, orig_sr, target_sr).astype(np.float32)
    return np.stack([soxr.resample(ch, orig_sr, target_sr) for ch in audio]).astype(np.float32)


def write_audio(
    path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None
) -> Path:
    """Write WAV/FLAC atomically. ``audio`` is ``(samples,)`` or ``(channels, samples)``."""
    path = Path(path)
    data = audio.T if audio.ndim == 2 else audio
    with atomic_path(path) as tmp:
        sf.write(
            str(tmp),
            data,
            sample_rate,
            subtype=subtype,
            format=path.suffix.lstrip(".").upper() or "WAV",
        )
    return path


def iter_audio_blocks(path: str | Path, block_frames: int, start: int = 0, stop: int | None = None):
    """Yield ``(channels, frames)`` float32 blocks of a WAV/FLAC file without loading it whole."""
    path = Path(path)
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            stop = f.frames if stop is None else min(stop, f.frames)
            f.seek(min(max(start, 0), f.frames))
            position = f.tell()
            while position < stop:
                block = f.read(min(block_frames, stop - position), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                position += len(block)
                yield block.T
    except RuntimeError as exc:
        raise AudioError(f"cannot decode {path.name}: {str(exc).splitlines()[0]}") from None


def audio_stats(path: str | Path, block_s: float = 10.0) -> dict:
    """Streaming level statistics of a WAV/FLAC file: frames, sample_rate, channels, duration_s,
    peak_dbfs, rms_dbfs (over all channels) and the mean/std of the mono mix (Demucs' normaliser)."""
    info = sf.info(str(path))
    total = 0
    peak = 0.0
    sum_sq = 0.0
    mono_sum = 0.0
    mono_sq = 0.0
    for block in iter_audio_blocks(path, max(int(block_s * info.samplerate), 1)):
        block64 = block.astype(np.float64)
        peak = max(peak, float(np.abs(block64).max(initial=0.0)))
        sum_sq += float(np.square(block64).sum())
        mono = block64.mean(axis=0)
        mono_sum += float(mono.sum())
        mono_sq += float(np.square(mono).sum())
        total += block.shape[1]
    n = max(total, 1)
    mono_mean = mono_sum / n
    return {
        "frames": total,
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "duration_s": total / float(info.samplerate),
        "peak_dbfs": _dbfs(peak),
        "rms_dbfs": _dbfs(np.sqrt(sum_sq / (n * info.channels))),
        "mono_mean": mono_mean,
        "mono_std": float(np.sqrt(max(mono_sq / n - mono_mean**2, 0.0))),
    }


def _dbfs(amplitude: float) -> float:
    return float(20.0 * np.log10(amplitude)) if amplitude > 0 else float("-inf")

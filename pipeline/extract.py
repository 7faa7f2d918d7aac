"""Stage ``extract``: decode each episode's audio stream to PCM WAV in ``DIR/audio/<drama>/<id>.wav``.

ffmpeg (through ffmpeg-python) reads the media and writes the WAV itself, so a long episode is
streamed file to file and never held in Python. The rate and channel count are those the
separation method needs (44.1 kHz stereo for Demucs; 16 kHz mono for ``none``/``repet``, which is
what every later stage resamples to anyway) unless set explicitly. WAVs larger than 4 GiB are
written as RF64.

Two checks run on the decoded audio (streamed in blocks):

* truncation: ffmpeg exits 0 on a cut-off file after decoding what it can, so a decoded duration
  shorter than the container's by more than ``max_missing_s`` (and 2 %) fails as ``TruncatedMedia``;
* silence: an episode whose peak stays below ``silence_dbfs`` (default -60 dBFS) fails as
  ``NoAudioSignal``. Silence is caught here, not downstream, because separation is the most
  expensive stage and has nothing to work on; quiet *stretches* inside an episode are left to
  the VAD of later stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from fsclap.audio import audio_stats
from fsclap.errors import FsclapError
from fsclap.io import atomic_path, sha256_file
from pipeline.stage import Stage, StageConfig, StageError, clear_stale_temporaries
from pipeline.tables import Episode


class ExtractFailed(StageError):
    """ffmpeg could not decode the audio stream."""


class TruncatedMedia(StageError):
    """Decoding stopped well before the duration the container announces."""


class NoAudioSignal(StageError):
    """The audio stream is silent."""


class ExtractConfig(StageConfig):
    operational: ClassVar[frozenset[str]] = frozenset({"workers"})

    sample_rate: int | None = Field(
        None, ge=8000, description="None: the rate the separation method needs."
    )
    channels: int | None = Field(
        None, ge=1, le=2, description="None: what the separation method needs."
    )
    codec: Literal["pcm_s16le", "pcm_s24le", "pcm_f32le"] = "pcm_s16le"
    silence_dbfs: float = Field(
        -60.0, description="Peak level below which an episode counts as silent."
    )
    max_missing_s: float = Field(
        2.0, ge=0, description="Tolerated shortfall of decoded vs announced duration."
    )
    workers: int = Field(2, ge=1)


class Extract(Stage):
    name = "extract"
    version = "1"
    Config = ExtractConfig
    done_status = "extracted"

    def check(self) -> None:
        import shutil

        if shutil.which("ffmpeg") is None:
            raise FsclapError("ffmpeg not found: install it (apt-get install ffmpeg)")
        if self.config.sample_rate is None or self.config.channels is None:
            raise FsclapError(
                "stages.extract: sample_rate and channels must be resolved before running"
            )

    def input_hash(self, episode: Episode) -> str | None:
        return episode.media_sha256 if episode.media_path else None

    def output_path(self, episode: Episode) -> Path:
        return self.context.layout.episode_audio(episode.drama_id, episode.episode_id)

    def outputs(self, episode: Episode) -> list[Path]:
        return (
            [self.context.abs(episode.audio_path)] if episode.audio_path else [Path("/nonexistent")]
        )

    def process(self, episode: Episode) -> Episode:
        import ffmpeg

        source = self.context.abs(episode.media_path)
        target = self.output_path(episode)
        clear_stale_temporaries(target)
        with atomic_path(target) as tmp:
            stream = ffmpeg.input(str(source)).output(
                str(tmp),
                f="wav",
                acodec=self.config.codec,
                ac=self.config.channels,
                ar=self.config.sample_rate,
                vn=None,
                sn=None,
                dn=None,
                rf64="auto",
                **{"map": f"0:a:{episode.audio_stream or 0}", "map_metadata": "-1"},
            )
            try:
                stream.global_args("-nostdin", "-v", "error").run(
                    capture_stdout=True, capture_stderr=True, overwrite_output=True
                )
            except ffmpeg.Error as exc:
                lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
                raise ExtractFailed(
                    f"ffmpeg cannot decode {source.name}: {lines[-1] if lines else 'unknown error'}"
                ) from None
            if tmp.stat().st_size <= 44:
                raise ExtractFailed(f"ffmpeg decoded no audio from {source.name}")
            stats = audio_stats(tmp)
            announced = episode.media_duration_s or 0.0
            missing = announced - stats["duration_s"]
            if missing > max(self.config.max_missing_s, 0.02 * announced):
                raise TruncatedMedia(
                    f"{source.name}: decoded {stats['duration_s']:.1f} s of the {announced:.1f} s the container announces "
                    "(truncated or corrupt file)"
                )
            if stats["peak_dbfs"] < self.config.silence_dbfs:
                raise NoAudioSignal(
                    f"{source.name}: no audio signal (peak {stats['peak_dbfs']:.1f} dBFS < {self.config.silence_dbfs:.0f} dBFS)"
                )
            digest = sha256_file(tmp)
        result = episode.copy()
        result.audio_path = self.context.rel(target)
        result.audio_sha256 = digest
        result.sample_rate = stats["sample_rate"]
        result.channels = stats["channels"]
        result.duration_s = stats["duration_s"]
        result.peak_dbfs = stats["peak_dbfs"]
        result.rms_dbfs = stats["rms_dbfs"]
        result.mono_mean = stats["mono_mean"]
        result.mono_std = stats["mono_std"]
        return result

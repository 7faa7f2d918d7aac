"""Stage ``diarize``: the vocal track of one episode -> sentence segments, speaker embeddings, clips.

For each episode (after ``separate``):

1. load the vocals as mono and resample to the paper's 24 kHz working rate (``sample_rate``);
2. resample that to 16 kHz for the models and run the profile's diarizer (FunASR on ``paper``,
   silero-vad + resemblyzer on ``offline``) -> sentence segments with episode-local labels;
3. mark segments that overlap another one (``overlap``) or stay shorter than ``min_s``
   (``too_short``); the others are candidates;
4. embed each candidate with the backend's speaker model (CAM++ / resemblyzer) and cut it from
   the 24 kHz track as ``DIR/clips/<drama>/<episode>/<segment id>.flac``;
5. write ``DIR/segments/<drama>/<episode>.npy`` (embeddings, one row per segment, zeros for
   non-candidates) and then ``DIR/segments/<drama>/<episode>.parquet`` (the rows), both atomic.

An episode where no speech is found is finished with zero segments and
``diarize_outcome = no_speech`` in the episodes table (it is a fact about the episode, not an
error to retry). Decoding errors fail the episode as a ``failures`` row.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from fsclap.audio import AudioError, load_audio, resample
from fsclap.config import Settings
from fsclap.io import atomic_path, sha256_file, write_parquet
from fsclap.log import get_logger
from pipeline.diarize import MODEL_SAMPLE_RATE
from pipeline.diarize.funasr_backend import (
    FUNASR_MODELS,
    FunasrDiarizer,
    FunasrDiarizerConfig,
    required_files,
)
from pipeline.diarize.offline_backend import OfflineDiarizer, OfflineDiarizerConfig
from pipeline.segments import (
    SegmentationConfig,
    SegmentRow,
    cut_clip,
    segment_frame,
    segment_reasons,
)
from pipeline.stage import Stage, StageConfig, StageError, short_hash
from pipeline.tables import Episode

log = get_logger("pipeline.diarize")

PAPER_SAMPLE_RATE = 24000  # §3.3: "we downsample the audio to 24kHz" before diarization


class DiarizeFailed(StageError):
    """The vocal track could not be read or diarized."""


class DiarizeConfig(StageConfig):
    operational: ClassVar[frozenset[str]] = frozenset({"workers"})

    backend: Literal["funasr", "offline"] = Field(
        "offline", description="funasr (paper profile) | offline."
    )
    sample_rate: int = Field(
        PAPER_SAMPLE_RATE, ge=16000, description="Working rate of the vocal track and the clips."
    )
    clip_format: Literal["flac", "wav"] = "flac"
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    offline: OfflineDiarizerConfig = Field(default_factory=OfflineDiarizerConfig)
    funasr: FunasrDiarizerConfig = Field(default_factory=FunasrDiarizerConfig)
    workers: int = Field(1, ge=1)


class Diarize(Stage):
    name = "diarize"
    version = "1"
    Config = DiarizeConfig
    done_status = "diarized"

    def __init__(self, config=None, *, context, settings=None):
        super().__init__(config, context=context)
        self.settings = settings
        self._diarizer = None
        self._embedder = None
        self._lock = threading.Lock()  # FunASR's AutoModel mutates its kwargs per call

    # --- backend ----------------------------------------------------------------------------

    def make_diarizer(self):
        c = self.config
        if c.backend == "funasr":
            if self.settings is None:
                self.settings = Settings()
            return FunasrDiarizer(
                self.settings, c.funasr, c.segmentation, device=self.context.device
            )

        return OfflineDiarizer(c.offline, c.segmentation, device=self.context.device)

    @property
    def diarizer(self):
        if self._diarizer is None:
            self._diarizer = self.make_diarizer()
        return self._diarizer

    def check(self) -> None:
        if self.config.backend == "funasr":
            _ = (
                self.diarizer
            )  # checks the four model dirs (MissingModelError names the missing file)

    def models(self) -> list[str]:
        return list(FUNASR_MODELS) if self.config.backend == "funasr" else []

    def setup(self) -> None:
        self._embedder = self.diarizer.embedder()

    def identity(self) -> dict:
        identity = super().identity()
        identity["config"].pop("offline" if self.config.backend == "funasr" else "funasr", None)
        return identity

    def extra_identity(self) -> dict:
        if self.config.backend == "funasr":
            files = {key: required_files(path) for key, path in self.diarizer.dirs.items()}
            return {
                "models": {
                    key: {
                        "config": short_hash(f["config"].read_text(encoding="utf-8")),
                        "weights": [f["weights"].name, f["weights"].stat().st_size],
                    }
                    for key, f in files.items()
                }
            }
        from importlib.metadata import version

        return {
            "models": {"silero-vad": version("silero-vad"), "resemblyzer": version("resemblyzer")}
        }

    # --- stage interface ---------------------------------------------------------------------

    def input_hash(self, episode: Episode) -> str | None:
        return episode.vocals_sha256 if episode.vocals_path else None

    def paths(self, episode: Episode) -> tuple[Path, Path, Path]:
        layout = self.context.layout
        return (
            layout.episode_segments(episode.drama_id, episode.episode_id),
            layout.episode_embeddings(episode.drama_id, episode.episode_id),
            layout.episode_clips_dir(episode.drama_id, episode.episode_id),
        )

    def outputs(self, episode: Episode) -> list[Path]:
        table, embeddings, _ = self.paths(episode)
        return [table, embeddings]

    def process(self, episode: Episode) -> Episode:
        c = self.config
        source = self.context.abs(episode.vocals_path)
        try:
            track, _ = load_audio(source, sample_rate=c.sample_rate)
        except AudioError as exc:
            raise DiarizeFailed(str(exc)) from None
        audio16 = resample(track, c.sample_rate, MODEL_SAMPLE_RATE)
        with self._lock:
            segments = self.diarizer.diarize(audio16)
            reasons = segment_reasons(segments, c.segmentation.min_s)
            candidates = [i for i, r in enumerate(reasons) if r is None]
            vectors = self._embedder.embed(
                [
                    audio16[
                        int(segments[i].start_s * MODEL_SAMPLE_RATE) : int(
                            segments[i].end_s * MODEL_SAMPLE_RATE
                        )
                    ]
                    for i in candidates
                ]
            )
        table_path, emb_path, clip_dir = self.paths(episode)
        embeddings = np.zeros((len(segments), self._embedder.dim), dtype=np.float32)
        if candidates:
            embeddings[candidates] = vectors
        rows = []
        keep_clips = set()
        for i, (seg, reason) in enumerate(zip(segments, reasons)):
            segment_id = f"{episode.episode_id}_{i:04d}"
            clip_path = None
            if reason is None:
                clip = cut_clip(
                    track, c.sample_rate, seg, clip_dir / f"{segment_id}.{c.clip_format}"
                )
                keep_clips.add(clip.name)
                clip_path = self.context.rel(clip)
            rows.append(
                SegmentRow(
                    segment_id=segment_id,
                    drama_id=episode.drama_id,
                    episode_id=episode.episode_id,
                    episode_index=episode.episode_index,
                    start_s=round(seg.start_s, 3),
                    end_s=round(seg.end_s, 3),
                    duration_s=round(seg.duration_s, 3),
                    text=seg.text,
                    episode_speaker=seg.speaker,
                    embedding_model=self._embedder.name,
                    embedding_path=self.context.rel(emb_path),
                    embedding_row=i,
                    clip_path=clip_path,
                    reason=reason,
                    diarizer=self.diarizer.name,
                )
            )
        remove_stale_clips(clip_dir, keep_clips)
        with atomic_path(emb_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, embeddings)
        write_parquet(table_path, segment_frame(rows))

        result = episode.copy()
        speech_s = float(sum(s.duration_s for s in segments))
        result.segments_path = self.context.rel(table_path)
        result.segments_sha256 = sha256_file(table_path)
        result.n_segments = len(segments)
        result.n_candidate_segments = len(candidates)
        result.n_episode_speakers = len({s.speaker for s in segments})
        result.speech_s = round(speech_s, 3)
        result.diarize_outcome = "ok" if segments else "no_speech"
        if not segments:
            log.info("%s: no speech found in %s", episode.episode_id, episode.vocals_path)
        return result


def remove_stale_clips(clip_dir: Path, keep: set[str]) -> None:
    """Clips of an earlier diarization of this episode that the new one does not produce."""
    if clip_dir.is_dir():
        for path in clip_dir.iterdir():
            if path.is_file() and path.name not in keep:
                path.unlink()

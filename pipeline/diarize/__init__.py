"""Speaker diarization: a vocal track in, sentence segments with episode-local speaker labels out.

Two backends behind one interface (:class:`Diarizer`):

* ``paper`` — :class:`~pipeline.diarize.funasr_backend.FunasrDiarizer`: FunASR ``AutoModel`` with
  Paraformer-large (SeACo), fsmn-vad, ct-punc and CAM++ from local model dirs; sentence segments
  with text, speaker labels from CAM++ spectral clustering (FunASR's ``sentence_info``).
* ``offline`` — :class:`~pipeline.diarize.offline_backend.OfflineDiarizer`: silero-vad speech
  regions, resemblyzer window embeddings, clustering with the number of speakers estimated, and
  sentence-length segments (no transcript: ``text`` is None).

Both take 16 kHz mono float32 (the rate their front ends use; see ``funasr_backend`` for why the
paper's 24 kHz working track is resampled once more before FunASR) and return
:class:`~pipeline.segments.Segment` lists already shaped to sentence length.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from pipeline.segments import Segment

MODEL_SAMPLE_RATE = 16000  # what fsmn-vad / Paraformer / CAM++ / silero-vad / resemblyzer expect


class Diarizer(Protocol):
    name: str  # recorded in the segments table ("funasr-paraformer-campplus", "offline-silero-resemblyzer")

    def diarize(self, audio: np.ndarray) -> list[Segment]:
        """Segments of a 16 kHz mono float32 track, sorted by start time."""

    def embedder(self):
        """The :class:`~pipeline.speakers.SpeakerEmbedder` that belongs to this backend."""


__all__ = ["Diarizer", "MODEL_SAMPLE_RATE", "Segment"]

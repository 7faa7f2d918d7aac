"""Emotion, audio events and language of clips with SenseVoiceSmall (paper profile).

SenseVoiceSmall (FunASR) writes its "rich transcription" as tags before the text::

    <|zh|><|HAPPY|><|Speech|><|woitn|>今天天气真好

language (``zh en yue ja ko nospeech``), emotion (``HAPPY SAD ANGRY NEUTRAL FEARFUL DISGUSTED
SURPRISED EMO_UNKNOWN``), audio event (``Speech BGM Applause Laughter Cry Sneeze Breath Cough``
…) and text normalisation (``withitn``/``woitn``). :func:`parse_rich_text` turns that into a
:class:`RichTags` record; emotions map to the clip manifest's lower-case vocabulary
(``EMO_UNKNOWN`` and a missing tag → ``unknown``).

The model loads only from a local directory (``Settings.model_path("sensevoice")``, as released on
ModelScope as ``iic/SenseVoiceSmall``): ``config.yaml``, ``model.pt``, the SentencePiece model
(``chn_jpn_yue_eng_ko_spectok.bpe.model``, or what ``configuration.json`` names) and ``am.mvn``.
A missing directory or file raises :class:`~fsclap.errors.MissingModelError` naming it — there is
no fallback to another emotion model, and the offline profile does not measure emotion at all.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fsclap.config import Settings
from fsclap.errors import FsclapError, MissingModelError
from fsclap.model_store.loaders import ModelLoader, declare_loader, near_silence
from pipeline.diarize.funasr_backend import (
    file_path_metas,
    plain_weights,
    quiet_funasr,
    verify_checkpoint,
)

SAMPLE_RATE = 16000
MODEL_ID = "iic/SenseVoiceSmall"
DEFAULT_BPE = "chn_jpn_yue_eng_ko_spectok.bpe.model"
MIN_SECONDS = 0.2  # shorter input gives the LFR front end less than a frame to work on

EMOTION_TAGS = {
    "HAPPY": "happy",
    "SAD": "sad",
    "ANGRY": "angry",
    "NEUTRAL": "neutral",
    "FEARFUL": "fearful",
    "DISGUSTED": "disgusted",
    "SURPRISED": "surprised",
    "EMO_UNKNOWN": "unknown",
}
EVENT_TAGS = (
    "Speech",
    "BGM",
    "Applause",
    "Laughter",
    "Cry",
    "Sneeze",
    "Breath",
    "Cough",
    "Sing",
    "Speech_Noise",
    "Event_UNK",
    "GBG",
)
LANGUAGE_TAGS = ("zh", "en", "yue", "ja", "ko", "nospeech")
TEXTNORM_TAGS = ("withitn", "woitn")
_TAG = re.compile(r"<\|([^|<>]+)\|>")
_HINT = (
    "download the ModelScope model dir iic/SenseVoiceSmall (configuration.json, config.yaml, model.pt, "
    f"{DEFAULT_BPE}, am.mvn) and put it there, or set model_paths.sensevoice / FSCLAP_MODEL_PATHS__SENSEVOICE"
)


@dataclass(frozen=True)
class RichTags:
    """What SenseVoice said about one clip."""

    emotion: str = "unknown"  # manifest vocabulary
    events: tuple[str, ...] = ()
    language: str | None = None
    text: str = ""
    raw: str = ""
    note: str = ""
    emotion_tags: tuple[str, ...] = field(default=())

    @property
    def events_text(self) -> str:
        return ",".join(self.events)


def all_tags() -> list[str]:
    """Every rich tag SenseVoice emits, as the strings its tokenizer holds."""
    names = [*LANGUAGE_TAGS, *EMOTION_TAGS, *EVENT_TAGS, *TEXTNORM_TAGS]
    return [f"<|{n}|>" for n in names]


def parse_rich_text(raw: str) -> RichTags:
    """Split SenseVoice output into tags and text. Several emotion tags (a long input decoded in
    pieces) are resolved by majority, ties to the first; unknown tags are noted, never fatal."""
    raw = raw or ""
    emotions, events, languages, unknown = [], [], [], []
    for name in _TAG.findall(raw):
        if name in EMOTION_TAGS:
            emotions.append(name)
        elif name in EVENT_TAGS:
            if name not in events:
                events.append(name)
        elif name in LANGUAGE_TAGS:
            languages.append(name)
        elif name not in TEXTNORM_TAGS:
            unknown.append(name)
    notes = []
    emotion = "unknown"
    if emotions:
        counts = Counter(emotions)
        best = max(counts.values())
        chosen = next(e for e in emotions if counts[e] == best)
        emotion = EMOTION_TAGS[chosen]
        if len(counts) > 1:
            notes.append(f"several emotion tags {dict(counts)}; majority {chosen}")
    else:
        notes.append("no emotion tag")
    if unknown:
        notes.append(f"unrecognised tags {sorted(set(unknown))}")
    language = Counter(languages).most_common(1)[0][0] if languages else None
    text = " ".join(_TAG.sub(" ", raw).split())
    return RichTags(
        emotion=emotion,
        events=tuple(events),
        language=language,
        text=text,
        raw=raw,
        note="; ".join(notes),
        emotion_tags=tuple(emotions),
    )


def sensevoice_files(model_dir: Path) -> dict[str, Path]:
    """The files FunASR reads from a SenseVoiceSmall dir (``configuration.json`` may rename them)."""
    metas = file_path_metas(model_dir)
    return {
        "config": model_dir / metas.get("config", "config.yaml"),
        "weights": model_dir / metas.get("init_param", "model.pt"),
        "bpe model": model_dir
        / ((metas.get("tokenizer_conf") or {}).get("bpemodel") or DEFAULT_BPE),
        "cmvn": model_dir / ((metas.get("frontend_conf") or {}).get("cmvn_file") or "am.mvn"),
    }


def check_sensevoice_dir(model_dir: str | Path) -> dict[str, Path]:
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise MissingModelError("SenseVoiceSmall model directory", model_dir, _HINT)
    files = sensevoice_files(model_dir)
    for role, path in files.items():
        if not path.is_file():
            raise MissingModelError(f"SenseVoiceSmall {role} ({path.name})", path, _HINT)
    return files


class SenseVoiceTagger:
    """SenseVoiceSmall through ``funasr.AutoModel`` from a local dir; thread-safe, loads once."""

    name = "sensevoice-small"

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        batch_size: int = 16,
        language: str = "auto",
    ):
        self.model_dir = Path(model_dir).expanduser().resolve()
        self.files = check_sensevoice_dir(self.model_dir)  # fail fast, before any work
        self.device = device
        self.batch_size = batch_size
        self.language = language
        self._model = None
        self._lock = threading.Lock()

    def identity(self) -> dict:
        """What decides the tags besides the audio: the config text and the weights file."""
        import hashlib

        config = hashlib.sha256(self.files["config"].read_bytes()).hexdigest()[:16]
        weights = self.files["weights"]
        return {
            "model": MODEL_ID,
            "config": config,
            "weights": [weights.name, weights.stat().st_size],
            "language": self.language,
        }

    def load(self):
        with self._lock:
            if self._model is None:
                from funasr import AutoModel

                weights = self.files["weights"]
                state = plain_weights(weights, "SenseVoiceSmall")  # before FunASR reads it
                with quiet_funasr():
                    model = AutoModel(
                        model=str(self.model_dir),
                        disable_update=True,
                        disable_pbar=True,
                        disable_log=True,
                        log_level="ERROR",
                        device=self.device,
                    )
                verify_checkpoint(model.model, state, weights, "SenseVoiceSmall")
                self._model = model
        return self._model

    def tag(self, audios: list[np.ndarray]) -> list[RichTags]:
        """Tags of 16 kHz mono clips, in order. Clips too short for the model get a noted
        ``unknown`` instead of a model call."""
        model = self.load()
        results: list[RichTags | None] = [None] * len(audios)
        todo = []
        for i, audio in enumerate(audios):
            audio = np.ascontiguousarray(audio, dtype=np.float32)
            if audio.size < MIN_SECONDS * SAMPLE_RATE or not np.isfinite(audio).all():
                results[i] = RichTags(
                    note=f"not tagged: clip shorter than {MIN_SECONDS} s or not finite"
                )
            else:
                todo.append((i, audio))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            with self._lock, quiet_funasr():
                outputs = model.generate(
                    input=[a for _, a in batch],
                    key=[f"clip{i}" for i, _ in batch],
                    batch_size=len(batch),
                    language=self.language,
                    use_itn=False,
                    disable_pbar=True,
                )
            if len(outputs) != len(batch):
                raise FsclapError(
                    f"SenseVoice returned {len(outputs)} results for {len(batch)} clips"
                )
            for (i, _), output in zip(batch, outputs):
                results[i] = parse_rich_text(str(output.get("text", "")))
        return results  # type: ignore[return-value]


def sensevoice_smoke_test(model_dir: Path, settings: Settings, device: str) -> str:
    """Load SenseVoiceSmall as the caption stage does and tag 1 s of near-silence."""
    tags = SenseVoiceTagger(model_dir, device=device).tag([near_silence(1.0, SAMPLE_RATE)])[0]
    return f"emotion {tags.emotion}, events {tags.events_text or '-'}"


def _sensevoice_files(model_dir: Path, settings: Settings) -> dict[str, Path]:
    return sensevoice_files(model_dir)


declare_loader(ModelLoader("sensevoice", files=_sensevoice_files, smoke_test=sensevoice_smoke_test))

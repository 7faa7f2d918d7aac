"""Measured speaking-style acoustics: F0 (median, range), loudness, speaking rate, duration.

Used by the generated corpora (to store what was really produced beside the intended labels) and by
the captioning stage (to turn a clip into pitch/speed/energy levels). Every function takes mono
float audio and its sample rate. A clip that cannot be measured (silence, too short, unvoiced) gets
NaN values and a ``reason``; nothing here raises on such audio.

F0 comes from Praat's autocorrelation pitch tracker (praat-parselmouth: fast and the reference
tool of phonetics). Loudness is the RMS over *active* frames only, so pauses do not pull it down.
Speaking rate is syllables per second of speech (leading/trailing silence trimmed); syllables are
counted from the transcript when there is one, else estimated as syllable nuclei: peaks of the
300-3000 Hz band envelope that stand out from their dips (de Jong & Wempe, 2009, on a band-limited
envelope). For comparing rates across voices the clip also gets a *rate timebase*
(:func:`rate_timebase`): the geometric mean of its articulation time (pauses removed) and its voiced
time, which follows a voice's tempo more closely than the whole speech span does, because pauses
and final lengthening differ between voices more than the tempo of their syllables. How the rate is
compared within a speaker (utterance length, the normal level) is in :mod:`pipeline.attributes`, with
the rate measures that did not beat the nuclei rate on espeak-ng voices.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

PITCH_FLOOR_HZ = 60.0
PITCH_CEILING_HZ = 600.0
PITCH_ANALYSIS_RATE = 16000
FRAME_S = 0.025
HOP_S = 0.010
MIN_DURATION_S = 0.15
# A frame is "active" when it is within this many dB of the clip's loud frames and above the floor.
ACTIVE_REL_DB = 35.0
ACTIVE_FLOOR_DBFS = -65.0


@dataclass(frozen=True)
class Acoustics:
    """What was measured. NaN means "could not be measured"; ``reason`` says why."""

    duration_s: float
    f0_median_hz: float
    f0_range_semitones: float
    voiced_fraction: float
    rms_dbfs: float
    speech_rate: float
    syllables: float
    speech_s: float
    reason: str | None = None
    nuclei: float = math.nan  # syllable nuclei found in the signal, whatever the transcript says
    timebase_s: float = math.nan  # rate_timebase(): articulation and voiced time combined

    def to_dict(self) -> dict:
        return asdict(self)


def _as_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2:
        audio = audio.mean(axis=0) if audio.shape[0] < audio.shape[1] else audio.mean(axis=1)
    return audio


def frame_dbfs(
    audio: np.ndarray, sr: int, frame_s: float = FRAME_S, hop_s: float = HOP_S
) -> np.ndarray:
    """Per-frame RMS level in dBFS (full scale sine = -3 dBFS)."""
    audio = _as_mono(audio)
    frame, hop = max(1, int(round(frame_s * sr))), max(1, int(round(hop_s * sr)))
    if audio.size < frame:
        audio = np.pad(audio, (0, frame - audio.size))
    n = 1 + (audio.size - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    power = np.mean(audio[idx] ** 2, axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def active_frames(
    levels_db: np.ndarray, rel_db: float = ACTIVE_REL_DB, floor_dbfs: float = ACTIVE_FLOOR_DBFS
) -> np.ndarray:
    """Boolean mask of frames that carry signal: above the floor and within ``rel_db`` of the loud frames."""
    if levels_db.size == 0:
        return np.zeros(0, dtype=bool)
    loud = np.percentile(levels_db, 95)
    return (levels_db > floor_dbfs) & (levels_db > loud - rel_db)


def active_rms_dbfs(audio: np.ndarray, sr: int) -> float:
    """RMS level (dBFS) over active frames only; NaN for silence."""
    levels = frame_dbfs(audio, sr)
    mask = active_frames(levels)
    if not mask.any():
        return math.nan
    return float(10.0 * np.log10(np.mean(10.0 ** (levels[mask] / 10.0))))


def trim_bounds(
    audio: np.ndarray,
    sr: int,
    rel_db: float = ACTIVE_REL_DB,
    floor_dbfs: float = ACTIVE_FLOOR_DBFS,
    pad_s: float = 0.0,
) -> tuple[int, int]:
    """Sample range ``[start, end)`` from the first to the last active frame (``(0, 0)`` for silence)."""
    audio = _as_mono(audio)
    levels = frame_dbfs(audio, sr)
    mask = active_frames(levels, rel_db, floor_dbfs)
    if not mask.any():
        return 0, 0
    hop, frame = int(round(HOP_S * sr)), int(round(FRAME_S * sr))
    first, last = int(np.argmax(mask)), int(len(mask) - 1 - np.argmax(mask[::-1]))
    pad = int(round(pad_s * sr))
    return max(0, first * hop - pad), min(audio.size, last * hop + frame + pad)


def f0_track(
    audio: np.ndarray,
    sr: int,
    floor_hz: float = PITCH_FLOOR_HZ,
    ceiling_hz: float = PITCH_CEILING_HZ,
    time_step: float = HOP_S,
) -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, f0_hz)`` per analysis frame, F0 = 0 where unvoiced (Praat autocorrelation method)."""
    import parselmouth

    audio = _as_mono(audio)
    if (
        sr > PITCH_ANALYSIS_RATE
    ):  # F0 <= 600 Hz needs no more bandwidth; Praat's cost grows with the rate
        import soxr

        audio, sr = soxr.resample(audio, sr, PITCH_ANALYSIS_RATE), PITCH_ANALYSIS_RATE
    sound = parselmouth.Sound(audio, sampling_frequency=float(sr))
    pitch = sound.to_pitch(time_step=time_step, pitch_floor=floor_hz, pitch_ceiling=ceiling_hz)
    return np.asarray(pitch.xs()), np.nan_to_num(pitch.selected_array["frequency"], nan=0.0)


def f0_contour(
    audio: np.ndarray,
    sr: int,
    floor_hz: float = PITCH_FLOOR_HZ,
    ceiling_hz: float = PITCH_CEILING_HZ,
) -> np.ndarray:
    """F0 per 10 ms frame in Hz, 0 where unvoiced (Praat autocorrelation method)."""
    return f0_track(audio, sr, floor_hz, ceiling_hz)[1]


def f0_stats(audio: np.ndarray, sr: int) -> tuple[float, float, float]:
    """``(median_hz, range_semitones, voiced_fraction)``; the range is the 5th-95th percentile span."""
    audio = _as_mono(audio)
    if audio.size < int(3 / PITCH_FLOOR_HZ * sr) + 1:  # Praat needs three periods of the floor
        return math.nan, math.nan, 0.0
    f0 = f0_contour(audio, sr)
    voiced = f0[f0 > 0]
    if voiced.size < 3:
        return math.nan, math.nan, float(voiced.size / max(f0.size, 1))
    lo, hi = np.percentile(voiced, [5, 95])
    return float(np.median(voiced)), float(12.0 * np.log2(hi / lo)), float(voiced.size / f0.size)


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Japanese kana: every hiragana/katakana letter is one mora, the long-vowel mark and the small
# tsu (a geminate) too; small ya/yu/yo, small vowels and small wa join the mora before them (kya = 1).
_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u30fc]")
_KANA_GLIDES = set("ゃゅょぁぃぅぇぉゎャュョァィゥェォヮ")
_WORD = re.compile(r"[A-Za-z']+")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def count_morae(text: str) -> int:
    """Japanese morae in the kana of ``text`` (kanji are not counted: they have no fixed reading)."""
    return sum(1 for ch in _KANA.findall(text) if ch not in _KANA_GLIDES)


def count_syllables(text: str) -> int:
    """Syllables in a transcript: one per CJK character, one per Japanese mora of kana
    (:func:`count_morae`), an English vowel-group heuristic per word.

    The English heuristic (vowel groups, silent final -e and -ed) is within about 10 % of dictionary
    counts on running English text, which is what a rate in syllables/s needs. Japanese is counted
    in morae, its timing unit, so a Japanese rate runs higher than an English one (about 6-7 vs
    4.5 per second): compare rates within a language or a voice.
    """
    count = len(_CJK.findall(text)) + count_morae(text)
    for word in _WORD.findall(text.lower()):
        word = word.strip("'")
        if not word:
            continue
        groups = len(_VOWEL_GROUPS.findall(word))
        if word.endswith("e") and not word.endswith(("le", "ee", "ye")) and groups > 1:
            groups -= 1  # silent final e: "make", "time"
        if word.endswith(("ed",)) and len(word) > 3 and word[-3] not in "td" and groups > 1:
            groups -= 1  # "walked", "played"
        count += max(1, groups)
    for digit_run in re.findall(r"\d+", text):
        count += 2 * len(digit_run)  # numbers: a rough two syllables per digit
    return count


# Syllable nuclei: the vowel energy of a syllable sits in 300-3000 Hz (F1/F2), where consonant
# bursts and low-frequency hum weigh little; a nucleus is an envelope peak at least
# NUCLEUS_PROMINENCE_DB above the dips beside it and within NUCLEUS_RANGE_DB of the loudest peak.
# Range and cut-off were chosen on espeak-ng voices (train family) by speaker-relative speed accuracy.
NUCLEUS_BAND_HZ = (300.0, 3000.0)
NUCLEUS_PROMINENCE_DB = 3.0
NUCLEUS_RANGE_DB = 20.0
ENVELOPE_RATE_HZ = 100
ENVELOPE_CUTOFF_HZ = 24.0  # above any syllable rate (< 10/s) and its transitions, below F0
PAUSE_MIN_S = 0.15  # an inactive stretch at least this long is a pause, not a stop closure
PAUSE_REL_DB = 25.0


def band_envelope_db(
    audio: np.ndarray, sr: int, band: tuple[float, float] = NUCLEUS_BAND_HZ
) -> np.ndarray:
    """Level (dB) of the band-limited amplitude envelope, low-passed and sampled at 100 Hz."""
    from scipy import signal
    from scipy.fft import next_fast_len

    audio = _as_mono(audio)
    hop = max(1, int(round(sr / ENVELOPE_RATE_HZ)))
    if audio.size < 4 * hop:
        return np.zeros(0)
    high = min(band[1], 0.45 * sr)
    bandpass = signal.butter(4, [band[0], high], btype="band", fs=sr, output="sos")
    # the analytic signal over a fast FFT length (a clip's own length may be a large prime)
    n_fft = next_fast_len(audio.size)
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(bandpass, audio), N=n_fft))[: audio.size]
    lowpass = signal.butter(4, ENVELOPE_CUTOFF_HZ, fs=sr, output="sos")
    envelope = signal.sosfiltfilt(lowpass, envelope)[::hop]
    return 20.0 * np.log10(np.maximum(envelope, 1e-6))


def syllable_nuclei(audio: np.ndarray, sr: int) -> int:
    """Syllable nuclei: prominent peaks of the band envelope (:func:`band_envelope_db`)."""
    from scipy import signal

    levels = band_envelope_db(audio, sr)
    if levels.size < 3:
        return 0
    peaks, _ = signal.find_peaks(
        levels, prominence=NUCLEUS_PROMINENCE_DB, height=levels.max() - NUCLEUS_RANGE_DB
    )
    return int(peaks.size)


def estimate_syllables(audio: np.ndarray, sr: int) -> int:
    """Syllables of a clip without a transcript: its syllable nuclei (:func:`syllable_nuclei`)."""
    return syllable_nuclei(audio, sr)


def _span_and_pauses(audio: np.ndarray, sr: int, min_s: float) -> tuple[float, list]:
    """Seconds from the first to the last active frame, and the ``(start_s, end_s)`` of the
    inactive stretches of at least ``min_s`` between them."""
    levels = frame_dbfs(audio, sr)
    active = active_frames(levels, rel_db=PAUSE_REL_DB)
    if not active.any():
        return 0.0, []
    first, last = int(np.argmax(active)), int(active.size - np.argmax(active[::-1]))
    inactive = ~active[first:last]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], inactive.astype(int), [0]])))
    found = [
        (float((first + a) * HOP_S), float((first + b) * HOP_S))
        for a, b in zip(edges[::2], edges[1::2])
        if (b - a) * HOP_S >= min_s
    ]
    return (last - first) * HOP_S, found


def pauses(audio: np.ndarray, sr: int, min_s: float = PAUSE_MIN_S) -> list[tuple[float, float]]:
    """``(start_s, end_s)`` of the inactive stretches of at least ``min_s`` between the first and
    the last active frame (the pauses inside an utterance; its edges are not pauses)."""
    return _span_and_pauses(audio, sr, min_s)[1]


def articulation_seconds(audio: np.ndarray, sr: int) -> float:
    """Active time without pauses (inactive stretches of at least ``PAUSE_MIN_S``)."""
    span, found = _span_and_pauses(audio, sr, PAUSE_MIN_S)
    return span - sum(b - a for a, b in found)


def rate_timebase(articulation_s: float, voiced_s: float) -> float:
    """The time a speaking rate is divided by: the geometric mean of articulation time (which counts
    unvoiced consonants and breath noise) and voiced time (which misses them and rests on the pitch
    tracker). Their errors differ, so the mean varies less with the voice than either."""
    if not (articulation_s > 0 and voiced_s > 0):
        return math.nan
    return math.sqrt(articulation_s * voiced_s)


def measure(audio: np.ndarray, sr: int, text: str | None = None) -> Acoustics:
    """All style measurements of one clip. Never raises on silence or short audio: NaN plus a reason."""
    audio = _as_mono(audio)
    duration = audio.size / float(sr) if sr else 0.0
    nan = math.nan
    if audio.size == 0 or duration < MIN_DURATION_S:
        return Acoustics(
            duration,
            nan,
            nan,
            0.0,
            nan,
            nan,
            nan,
            0.0,
            f"too short ({duration:.2f} s < {MIN_DURATION_S} s)",
        )
    if not np.isfinite(audio).all():
        return Acoustics(
            duration, nan, nan, 0.0, nan, nan, nan, 0.0, "audio holds NaN or infinite samples"
        )
    start, end = trim_bounds(audio, sr)
    if end <= start:
        return Acoustics(duration, nan, nan, 0.0, nan, nan, nan, 0.0, "silent (no active frames)")
    speech = audio[start:end]
    speech_s = speech.size / float(sr)
    rms = active_rms_dbfs(speech, sr)
    median, span, voiced = f0_stats(speech, sr)
    nuclei = float(syllable_nuclei(speech, sr))
    syllables = float(count_syllables(text)) if text and text.strip() else nuclei
    rate = syllables / speech_s if speech_s >= MIN_DURATION_S and syllables > 0 else nan
    timebase = rate_timebase(articulation_seconds(speech, sr), voiced * speech_s)
    reasons = []
    if math.isnan(median):
        reasons.append("no voiced frames (F0 unmeasurable)")
    if math.isnan(rate):
        reasons.append("no syllables found" if syllables == 0 else "speech too short for a rate")
    return Acoustics(
        duration,
        median,
        span,
        voiced,
        rms,
        rate,
        syllables,
        speech_s,
        "; ".join(reasons) or None,
        nuclei,
        timebase,
    )


def semitones(f_hz: float, ref_hz: float) -> float:
    return 12.0 * math.log2(f_hz / ref_hz)

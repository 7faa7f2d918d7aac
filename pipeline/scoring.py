"""Scores against generated ground truth: diarization error rate, SI-SDR, attribute accuracy.

* **DER** uses ``pyannote.metrics`` (the reference implementation the diarization literature
  reports with). ``collar`` here is the NIST convention: seconds *each side* of every reference
  boundary that are not scored (NIST md-eval ``-c 0.25``); pyannote's own ``collar`` is the total
  width, so it receives ``2 * collar``. Overlapped speech is scored unless ``skip_overlap``.
* **SI-SDR** (scale-invariant signal-to-distortion ratio, Le Roux et al., 2019), in dB.
* **Attribute accuracy**: per attribute, the share of clips whose predicted level equals the true
  one, with the confusion matrix over the attribute's levels. Rows where either side is missing or
  ``unknown`` are not scored and are counted apart.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fsclap.errors import FsclapError
from fsclap.manifest import ATTRIBUTE_LEVELS

Turn = tuple[float, float, str]  # (start_s, end_s, speaker)
MISSING_LEVELS = {"", "unknown", "none", "nan"}


class ScoringError(FsclapError):
    """Inputs that cannot be scored (empty reference, malformed RTTM, mismatched signals)."""


# --- diarization --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiarizationScore:
    """Durations in seconds; ``der = (false_alarm + missed + confusion) / total``."""

    der: float
    false_alarm: float
    missed: float
    confusion: float
    total: float

    def as_dict(self) -> dict:
        return {
            "der": self.der,
            "false_alarm": self.false_alarm,
            "missed": self.missed,
            "confusion": self.confusion,
            "total": self.total,
        }


def read_rttm(path: str | Path) -> dict[str, list[Turn]]:
    """Turns per file id from an RTTM file: ``{file_id: [(start, end, speaker), ...]}``."""
    path = Path(path)
    if not path.is_file():
        raise ScoringError(f"RTTM file not found: {path}")
    return parse_rttm(path.read_text(encoding="utf-8"))


def parse_rttm(text: str) -> dict[str, list[Turn]]:
    """Turns per file id from RTTM text (``SPEAKER`` lines; others and comments are skipped)."""
    turns: dict[str, list[Turn]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] != "SPEAKER":
            continue
        if len(fields) < 8:
            raise ScoringError(f"RTTM line {number}: expected at least 8 fields, got {len(fields)}")
        try:
            start, duration = float(fields[3]), float(fields[4])
        except ValueError:
            raise ScoringError(
                f"RTTM line {number}: onset/duration are not numbers: {fields[3]!r} {fields[4]!r}"
            ) from None
        turns.setdefault(fields[1], []).append((start, start + duration, fields[7]))
    return turns


def _annotation(turns: Iterable[Turn], uri: str):
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=uri)
    for k, (start, end, speaker) in enumerate(turns):
        if end > start:
            annotation[Segment(float(start), float(end)), k] = str(speaker)
    return annotation


def diarization_error(
    reference: Sequence[Turn],
    hypothesis: Sequence[Turn],
    collar: float = 0.25,
    skip_overlap: bool = False,
    duration_s: float | None = None,
) -> DiarizationScore:
    """DER of one recording. Speakers are mapped one-to-one to maximise overlap (Hungarian).

    ``duration_s`` sets the scored region ``[0, duration_s]``; by default it is the extent of both
    annotations.
    """
    return diarization_error_corpus(
        {"rec": list(reference)},
        {"rec": list(hypothesis)},
        collar,
        skip_overlap,
        {"rec": duration_s} if duration_s else None,
    )


def diarization_error_corpus(
    reference: Mapping[str, Sequence[Turn]],
    hypothesis: Mapping[str, Sequence[Turn]],
    collar: float = 0.25,
    skip_overlap: bool = False,
    durations: Mapping[str, float] | None = None,
) -> DiarizationScore:
    """DER over many recordings: error durations summed over files, divided by the summed total.

    A file missing from ``hypothesis`` counts as all missed speech.
    """
    from pyannote.core import Segment, Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate

    if collar < 0:
        raise ScoringError(f"collar must be >= 0 seconds, got {collar}")
    if not any(len(t) for t in reference.values()):
        raise ScoringError("reference has no speech: DER is undefined")
    metric = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip_overlap)
    for uri, ref_turns in reference.items():
        ref = _annotation(ref_turns, uri)
        hyp = _annotation(hypothesis.get(uri, []), uri)
        end = (durations or {}).get(uri) or max(
            [e for _, e, _ in ref_turns] + [e for _, e, _ in hypothesis.get(uri, [])]
        )
        uem = Timeline([Segment(0.0, float(end))], uri=uri)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric(ref, hyp, uem=uem)
    totals = {
        k: metric[k] for k in ("false alarm", "missed detection", "confusion", "total")
    }  # accumulated
    total = totals["total"]
    der = (
        (totals["false alarm"] + totals["missed detection"] + totals["confusion"]) / total
        if total
        else math.nan
    )
    return DiarizationScore(
        der, totals["false alarm"], totals["missed detection"], totals["confusion"], total
    )


# --- separation ---------------------------------------------------------------------------------


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB. Both signals are made zero-mean; lengths must match within 1 %
    (the longer one is cut, e.g. codec padding)."""
    estimate = np.asarray(estimate, dtype=np.float64).ravel()
    reference = np.asarray(reference, dtype=np.float64).ravel()
    if abs(estimate.size - reference.size) > max(1, 0.01 * reference.size):
        raise ScoringError(
            f"signals differ in length: estimate {estimate.size}, reference {reference.size} samples"
        )
    n = min(estimate.size, reference.size)
    estimate, reference = estimate[:n] - estimate[:n].mean(), reference[:n] - reference[:n].mean()
    energy = np.dot(reference, reference)
    if energy <= 1e-12 * max(n, 1):
        raise ScoringError("reference is silent: SI-SDR is undefined")
    target = (np.dot(estimate, reference) / energy) * reference
    residual = estimate - target
    return float(10 * np.log10(np.dot(target, target) / max(np.dot(residual, residual), 1e-20)))


def si_sdr_improvement(estimate: np.ndarray, reference: np.ndarray, mixture: np.ndarray) -> float:
    """SI-SDRi: how much better the estimate is than the unprocessed mixture, in dB."""
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


# --- attribute accuracy -------------------------------------------------------------------------


@dataclass
class AttributeScore:
    attribute: str
    accuracy: float
    n: int  # rows scored
    unscored: int  # rows where truth or prediction was missing/unknown
    confusion: pd.DataFrame = field(repr=False)  # rows: true level, columns: predicted level

    def as_dict(self) -> dict:
        return {
            "attribute": self.attribute,
            "accuracy": self.accuracy,
            "n": self.n,
            "unscored": self.unscored,
            "confusion": self.confusion.to_dict(orient="index"),
        }


def _level(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip().lower()
    return None if text in MISSING_LEVELS else text


def attribute_accuracy(
    truth: pd.DataFrame,
    predicted: pd.DataFrame,
    attributes: Sequence[str] | None = None,
    key: str | None = None,
) -> dict[str, AttributeScore]:
    """Per-attribute accuracy and confusion matrix of ``predicted`` against ``truth``.

    Rows are paired by ``key`` (e.g. ``clip_id``) when given, else by position.
    """
    if key is not None:
        missing = set(truth[key]) - set(predicted[key])
        if missing:
            raise ScoringError(
                f"{len(missing)} truth rows have no prediction (e.g. {sorted(missing)[:3]})"
            )
        predicted = predicted.set_index(key).loc[truth[key]].reset_index()
    elif len(truth) != len(predicted):
        raise ScoringError(f"truth has {len(truth)} rows, prediction {len(predicted)}")
    attributes = attributes or [
        a for a in ATTRIBUTE_LEVELS if a in truth.columns and a in predicted.columns
    ]
    scores = {}
    for attr in attributes:
        if attr not in truth.columns or attr not in predicted.columns:
            raise ScoringError(f"attribute {attr!r} is not in both tables")
        pairs = [
            (t, p)
            for t, p in zip(map(_level, truth[attr]), map(_level, predicted[attr]))
            if t and p
        ]
        levels = [lvl for lvl in ATTRIBUTE_LEVELS.get(attr, ()) if lvl != "unknown"]
        levels += sorted({v for pair in pairs for v in pair} - set(levels))
        confusion = pd.DataFrame(
            0, index=pd.Index(levels, name="true"), columns=pd.Index(levels, name="predicted")
        )
        for t, p in pairs:
            confusion.loc[t, p] += 1
        n = len(pairs)
        accuracy = float(np.trace(confusion.to_numpy()) / n) if n else math.nan
        scores[attr] = AttributeScore(attr, accuracy, n, len(truth) - n, confusion)
    return scores


def match_segments(
    truth: Sequence[Turn], predicted: Sequence[Turn], min_iou: float = 0.5
) -> list[tuple[int, int]]:
    """Pairs ``(truth_index, predicted_index)`` of segments overlapping with IoU >= ``min_iou``,
    each used at most once, best overlaps first (to score per-segment labels on dramas)."""
    candidates = []
    for i, (ts, te, _) in enumerate(truth):
        for j, (ps, pe, _) in enumerate(predicted):
            inter = min(te, pe) - max(ts, ps)
            if inter <= 0:
                continue
            iou = inter / (max(te, pe) - min(ts, ps))
            if iou >= min_iou:
                candidates.append((-iou, i, j))
    used_t, used_p, pairs = set(), set(), []
    for _, i, j in sorted(candidates):
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            pairs.append((i, j))
    return sorted(pairs)

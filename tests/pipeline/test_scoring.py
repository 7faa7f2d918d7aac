"""Scoring helpers on hand-made cases whose answers are worked out in the comments."""

import numpy as np
import pandas as pd
import pytest

from pipeline.scoring import (
    ScoringError,
    attribute_accuracy,
    diarization_error,
    diarization_error_corpus,
    match_segments,
    parse_rttm,
    read_rttm,
    si_sdr,
    si_sdr_improvement,
)
from pipeline.synth.drama import rttm_lines


def test_der_is_zero_for_a_relabelled_perfect_hypothesis():
    ref = [(0, 4, "A"), (4, 9, "B"), (9, 12, "A")]
    hyp = [(0, 4, "spk7"), (4, 9, "spk2"), (9, 12, "spk7")]
    assert diarization_error(ref, hyp, collar=0).der == 0.0


def test_der_speaker_confusion_with_and_without_collar():
    ref = [(0, 10, "A"), (10, 20, "B")]
    hyp = [(0, 12, "x"), (12, 20, "y")]
    # x->A, y->B; [10, 12] is B labelled A: confusion 2 s of 20 s
    score = diarization_error(ref, hyp, collar=0)
    assert (score.confusion, score.total, score.der) == pytest.approx((2.0, 20.0, 0.1))
    # collar 0.5 s each side of the boundaries 0, 10, 20 removes [0, .5], [9.5, 10.5], [19.5, 20]:
    # total 18 s, confusion [10.5, 12] = 1.5 s
    score = diarization_error(ref, hyp, collar=0.5)
    assert (score.confusion, score.total) == pytest.approx((1.5, 18.0))
    assert score.der == pytest.approx(1.5 / 18)


def test_der_missed_and_false_alarm():
    ref = [(0, 10, "A")]
    hyp = [(2, 12, "x")]
    # missed [0, 2], false alarm [10, 12], total 10
    score = diarization_error(ref, hyp, collar=0)
    assert (score.missed, score.false_alarm, score.der) == pytest.approx((2.0, 2.0, 0.4))
    # collar 0.5: scored [0.5, 9.5] and [10.5, 12]: missed 1.5, false alarm 1.5, total 9
    score = diarization_error(ref, hyp, collar=0.5)
    assert (score.missed, score.false_alarm, score.total, score.der) == pytest.approx(
        (1.5, 1.5, 9.0, 3 / 9)
    )


def test_der_counts_overlapped_speech():
    ref = [(0, 10, "A"), (5, 15, "B")]
    hyp = [(0, 15, "x")]
    # total = 10 + 10 = 20; x maps to A or B (10 s each). With A: [5,10] misses B (5 s),
    # [10,15] is B labelled A (5 s confusion). DER = 10/20.
    score = diarization_error(ref, hyp, collar=0)
    assert score.total == pytest.approx(20.0)
    assert score.missed + score.confusion == pytest.approx(10.0)
    assert score.der == pytest.approx(0.5)
    # skipping overlap scores only [0,5] and [10,15]: x->A gives 5 s confusion of 10
    assert diarization_error(ref, hyp, collar=0, skip_overlap=True).der == pytest.approx(0.5)


def test_der_uses_an_optimal_one_to_one_mapping():
    ref = [(0, 4, "A"), (4, 8, "B"), (8, 12, "C")]
    hyp = [(0, 4, "p"), (4, 12, "q")]
    # p->A, q->B (or C); the other 4 s are confusion: 4/12
    assert diarization_error(ref, hyp, collar=0).der == pytest.approx(4 / 12)


def test_der_empty_hypothesis_is_all_missed_and_corpus_sums_durations():
    ref = [(0, 10, "A")]
    assert diarization_error(ref, [], collar=0).der == pytest.approx(1.0)
    corpus = diarization_error_corpus(
        {"a": [(0, 10, "A"), (10, 20, "B")], "b": [(0, 20, "A")]},
        {"a": [(0, 12, "x"), (12, 20, "y")]},
        collar=0,
    )
    # file a: 2 s confusion of 20; file b: missing -> 20 s missed of 20; (2 + 20) / 40
    assert corpus.der == pytest.approx(22 / 40)
    with pytest.raises(ScoringError, match="no speech"):
        diarization_error([], [(0, 1, "x")])


def test_rttm_round_trip(tmp_path):
    lines = [
        {"start_s": 1.25, "end_s": 3.5, "speaker_id": "s1"},
        {"start_s": 0.5, "end_s": 1.0, "speaker_id": "s2"},
    ]
    path = tmp_path / "x.rttm"
    path.write_text(rttm_lines("ep1", lines))
    assert read_rttm(path) == {"ep1": [(0.5, 1.0, "s2"), (1.25, 3.5, "s1")]}
    with pytest.raises(ScoringError, match="line 1"):
        parse_rttm("SPEAKER ep1 1 x 2.0 <NA> <NA> s1 <NA> <NA>")
    with pytest.raises(ScoringError, match="not found"):
        read_rttm(tmp_path / "missing.rttm")


def test_si_sdr_hand_cases():
    t = np.arange(16000) / 16000
    s = np.sin(2 * np.pi * 10 * t)  # 10 whole periods: zero mean
    n = np.cos(2 * np.pi * 10 * t)  # orthogonal to s, same energy
    assert si_sdr(s + 0.1 * n, s) == pytest.approx(20.0, abs=1e-6)  # 10 log10(1 / 0.01)
    assert si_sdr(3.0 * (s + 0.1 * n), s) == pytest.approx(20.0, abs=1e-6)  # scale invariant
    assert si_sdr(s + n, s) == pytest.approx(0.0, abs=1e-6)
    assert si_sdr(s, s) > 100
    assert si_sdr_improvement(s + 0.1 * n, s, s + n) == pytest.approx(20.0, abs=1e-6)
    with pytest.raises(ScoringError, match="silent"):
        si_sdr(s, np.zeros_like(s))
    with pytest.raises(ScoringError, match="length"):
        si_sdr(s[:8000], s)


def test_attribute_accuracy_and_confusion():
    truth = pd.DataFrame(
        {
            "clip_id": ["a", "b", "c", "d"],
            "gender": ["female", "female", "male", "male"],
            "emotion": ["happy", "unknown", "sad", "sad"],
        }
    )
    predicted = pd.DataFrame(
        {
            "clip_id": ["d", "c", "b", "a"],
            "gender": ["male", "male", "male", "female"],
            "emotion": ["angry", None, "sad", "happy"],
        }
    )
    scores = attribute_accuracy(truth, predicted, key="clip_id")
    gender = scores["gender"]
    assert (gender.accuracy, gender.n, gender.unscored) == (0.75, 4, 0)
    assert (
        gender.confusion.loc["female", "female"] == 1
        and gender.confusion.loc["female", "male"] == 1
    )
    assert gender.confusion.loc["male", "male"] == 2 and gender.confusion.to_numpy().sum() == 4
    emotion = scores[
        "emotion"
    ]  # b (truth unknown) and c (no prediction) are not scored; a right, d wrong
    assert (emotion.accuracy, emotion.n, emotion.unscored) == (0.5, 2, 2)
    assert emotion.confusion.loc["sad", "angry"] == 1
    with pytest.raises(ScoringError, match="no prediction"):
        attribute_accuracy(truth, predicted.iloc[:2], key="clip_id")


def test_match_segments_pairs_best_overlaps_once():
    truth = [(0.0, 2.0, "A"), (2.5, 5.0, "B"), (6.0, 7.0, "A")]
    predicted = [(0.1, 2.1, "x"), (0.0, 1.0, "y"), (2.4, 4.0, "z"), (9.0, 10.0, "w")]
    # (0,0): IoU 1.9/2.1; (0,1): 1/2 but truth 0 already used; (1,2): 1.5/2.6 = 0.58
    assert match_segments(truth, predicted, min_iou=0.5) == [(0, 0), (1, 2)]

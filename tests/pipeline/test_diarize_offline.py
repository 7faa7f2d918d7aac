"""Offline profile end to end on generated drama episodes (the drama generator): silero-vad +
resemblyzer + clustering, scored with DER against the exact ground truth; and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fsclap.audio import load_audio
from pipeline.diarize.offline_backend import (
    OfflineDiarizer,
    OfflineDiarizerConfig,
    absorb_small_clusters,
    cluster_embeddings,
    median_filter,
    resegment_windows,
    shift_invariant_similarity,
    split_region,
    window_regions,
)
from pipeline.scoring import diarization_error
from pipeline.synth.drama import speech_turns

SR = 16000


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    """Two generated episodes: drama01 has 2 speakers, drama02 has 3 (seed 2), with music."""
    from pipeline.synth.drama import generate_dramas, load_truth

    out = tmp_path_factory.mktemp("dramas")
    generate_dramas(out, dramas=2, episodes=1, seed=2, duration_s=40, workers=2)
    found = []
    for truth in load_truth(out):
        base = Path(out) / "truth" / truth["drama_id"] / truth["episode_id"]
        stems = {
            k: load_audio(base / f"{k}.flac", sample_rate=SR)[0] for k in ("speech", "music", "mix")
        }
        found.append((truth, stems))
    assert [len(t["speakers"]) for t, _ in found] == [2, 3]
    return found


@pytest.fixture(scope="module")
def diarizer():
    return OfflineDiarizer()


def reference(truth):
    return speech_turns(truth["lines"])


def test_generated_episodes_with_music_are_diarized(episodes, diarizer):
    for truth, stems in episodes:
        segments = diarizer.diarize(stems["mix"])
        hypothesis = [(s.start_s, s.end_s, s.speaker) for s in segments]
        score = diarization_error(reference(truth), hypothesis, collar=0.25)
        n_found = len({s.speaker for s in segments})
        # measured: DER 0.075 (2 speakers) and 0.035 (3 speakers); the bound leaves room for
        # numeric differences between machines, not for a broken clustering (DER ~0.5-0.6)
        assert score.der < 0.3, (truth["episode_id"], score)
        assert abs(n_found - len(truth["speakers"])) <= 1
        assert all(s.text is None for s in segments)  # the offline profile does not transcribe
        duration = len(stems["mix"]) / SR
        assert all(0 <= s.start_s < s.end_s <= duration for s in segments)
        assert all(s.duration_s <= 15.0 for s in segments)
        assert [s.start_s for s in segments] == sorted(s.start_s for s in segments)


def test_single_speaker_gets_one_label(episodes, diarizer):
    truth, stems = episodes[1]
    keep = truth["speakers"][0]["speaker_id"]
    mask = np.zeros(len(stems["speech"]), dtype=bool)
    for line in truth["lines"]:
        if line["speaker_id"] == keep:
            mask[int(line["start_s"] * SR) : int(line["end_s"] * SR)] = True
    segments = diarizer.diarize(np.where(mask, stems["speech"], 0).astype(np.float32))
    assert segments and {s.speaker for s in segments} == {"S0"}


def test_no_speech_music_only_and_tiny_input_give_no_segments(episodes, diarizer):
    _, stems = episodes[0]
    assert diarizer.diarize(stems["music"]) == []  # music without voice
    assert diarizer.diarize(np.zeros(SR * 5, np.float32)) == []
    assert diarizer.diarize(np.zeros(100, np.float32)) == []
    rng = np.random.default_rng(0)
    assert diarizer.diarize((1e-3 * rng.standard_normal(SR * 5)).astype(np.float32)) == []


def test_overlapping_speech_is_segmented_without_crash(episodes, diarizer):
    (t2, s2), (t3, s3) = episodes
    n = min(len(s2["speech"]), len(s3["speech"]))
    both = (s2["speech"][:n] + s3["speech"][:n]).astype(np.float32)  # two dramas talking at once
    segments = diarizer.diarize(both)
    assert segments
    assert all(
        a.end_s <= b.start_s + 1e-6 for a, b in zip(segments, segments[1:])
    )  # one label at a time


@pytest.mark.parametrize(
    "episode",
    [
        pytest.param(
            0,
            id="2-speakers",
            marks=pytest.mark.xfail(
                strict=True,
                reason="found by this test: spectral clustering (eigengap rule) splits "
                "drama01_ep001's 2 speakers into 4 (speech stem: DER 0.45, 11.4 s of 25.2 s "
                "confused; also 4 with resegment=False); the agglomerative default finds 2 "
                "(DER 0.012) on the same stem",
            ),
        ),
        pytest.param(1, id="3-speakers"),
    ],
)
def test_spectral_clustering_option_finds_the_true_speakers(episodes, episode):
    truth, stems = episodes[episode]
    segments = OfflineDiarizer(OfflineDiarizerConfig(clustering="spectral")).diarize(
        stems["speech"]
    )
    hypothesis = [(s.start_s, s.end_s, s.speaker) for s in segments]
    score = diarization_error(reference(truth), hypothesis, collar=0.25)
    assert len({s.speaker for s in segments}) == len(truth["speakers"]), score
    # measured on the speech stem: DER 0.022 (3 speakers: 3 found, 0.56 s missed, no confusion);
    # a wrong speaker count or a broken clustering confuses far more (0.45 on the 2-speaker one)
    assert score.der < 0.1, (truth["episode_id"], score)


def test_cluster_helpers():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 16))
    emb = np.vstack(
        [
            a + 0.05 * rng.standard_normal((10, 16)),
            b + 0.05 * rng.standard_normal((10, 16)),
            b + 0.6 * a + 0.05 * rng.standard_normal((2, 16)),
        ]
    )
    labels = cluster_embeddings(emb, "agglomerative", 0.3, 10)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:20])) == 1 and labels[0] != labels[10]
    assert len(set(cluster_embeddings(emb, "agglomerative", 0.05, 2))) <= 2  # max_speakers caps
    absorbed = absorb_small_clusters(emb, np.array([0] * 10 + [1] * 10 + [2, 2]), min_size=5)
    assert set(absorbed) == {0, 1}
    assert cluster_embeddings(emb[:1], "agglomerative", 0.3, 10).tolist() == [0]
    assert median_filter(np.array([0, 0, 1, 0, 0, 1, 1, 1]), 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    pieces = split_region(0.0, 4.0, np.array([0.75, 1.5, 2.25, 3.0]), np.array([0, 0, 1, 1]))
    assert [(p.start_s, p.end_s, p.speaker) for p in pieces] == [
        (0.0, 1.875, "S0"),
        (1.875, 4.0, "S1"),
    ]


def drifting_speakers(seed: int, n_speakers: int = 4, styles: int = 3, per_style: int = 12):
    """Window embeddings of speakers whose lines come in several styles (each style moves the
    speaker's embedding), plus a 7-window fragment of speaker 0 in an unusual style."""
    rng = np.random.default_rng(seed)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    centres = unit(rng.standard_normal((n_speakers, 64)))
    emb, truth = [], []
    for k, centre in enumerate(centres):
        for _ in range(styles):
            style = 0.6 * unit(rng.standard_normal(64))
            emb += [centre + style + 0.2 * unit(rng.standard_normal(64)) for _ in range(per_style)]
            truth += [k] * per_style
    odd = 1.2 * unit(rng.standard_normal(64))
    emb += [centres[0] + odd + 0.1 * unit(rng.standard_normal(64)) for _ in range(7)]
    truth += [0] * 7
    return np.array(emb), np.array(truth)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_speaker_count_holds_under_within_speaker_drift(seed):
    emb, truth = drifting_speakers(seed)
    labels = cluster_embeddings(
        emb, "agglomerative", 0.4, 10, min_cluster_windows=5, min_cluster_share=0.08
    )
    assert len(set(labels)) == 4
    assert all(len(set(labels[truth == k])) == 1 for k in range(4))  # every speaker whole ...
    assert len({labels[truth == k][0] for k in range(4)}) == 4  # ... and apart from the others
    # without the share floor the odd fragment (7 windows > 5) stays a speaker of its own
    assert len(set(cluster_embeddings(emb, "agglomerative", 0.4, 10, min_cluster_windows=5))) == 5


def test_default_size_floor_is_a_share_of_the_windows():
    config = OfflineDiarizerConfig()
    assert config.min_cluster_share > 0
    emb, _ = drifting_speakers(0)
    assert len(set(OfflineDiarizer(config).cluster(emb))) == 4


@pytest.fixture(scope="module")
def restyled_speaker():
    """One espeak voice saying eight lines in different styles, half of them pitch-shifted with
    their formants afterwards (what restyling a recorded voice does), over music at 10 dB."""
    import random

    from pipeline.synth.drama import family_voices, render_restyled
    from pipeline.synth.music import MusicStyle, make_music
    from pipeline.synth.sentences import make_sentence
    from pipeline.synth.style import StyleLevels, draw_targets

    voice = next(v for v in family_voices("train") if v.voice_id == "espeak-m3")
    rng = random.Random(5)
    styles = [
        ("low", "slow", "sad", -4.0),
        ("high", "fast", "angry", 4.0),
        ("normal", "normal", "neutral", 0.0),
        ("high", "normal", "surprised", 0.0),
        ("low", "normal", "disgusted", 0.0),
        ("high", "fast", "happy", 3.0),
        ("normal", "slow", "fearful", -3.0),
        ("normal", "fast", "neutral", 0.0),
    ]
    pieces = []
    for pitch, speed, emotion, shift in styles:
        levels = StyleLevels("male", pitch, speed, "normal", emotion)
        utt = render_restyled(
            voice, make_sentence(rng), levels, draw_targets(rng, levels), SR, shift
        )
        pieces += [np.zeros(int(0.6 * SR), np.float32), utt.audio]
    speech = np.concatenate(pieces + [np.zeros(int(0.6 * SR), np.float32)])
    music = make_music(
        len(speech) / SR, SR, MusicStyle.draw(np.random.default_rng(1)), np.random.default_rng(2)
    )
    active = np.abs(speech) > 1e-4
    music = music * np.sqrt(
        np.mean(speech[active] ** 2) / (np.mean(music[active] ** 2) * 10 ** (10 / 10))
    )
    return (speech + music).astype(np.float32)


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(
            OfflineDiarizerConfig(),
            id="default",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known: the default splits this speaker in 3 (9.7 / 7.9 / 8.5 s); no default "
                "measured better on the espeak dramas (see offline_backend)",
            ),
        ),
        pytest.param(
            OfflineDiarizerConfig(shift_semitones=(-4.0, -2.0, 2.0, 4.0)), id="shift-invariant"
        ),
    ],
)
def test_restyled_lines_of_one_speaker_stay_one_speaker(restyled_speaker, config):
    segments = OfflineDiarizer(config).diarize(restyled_speaker)
    assert segments
    seconds: dict[str, float] = {}
    for s in segments:
        seconds[s.speaker] = seconds.get(s.speaker, 0.0) + s.duration_s
    # a second label over more than a few seconds is the over-splitting this guards against
    assert max(seconds.values()) / sum(seconds.values()) >= 0.9, seconds


def test_shift_invariant_similarity_takes_the_best_shift():
    u = np.eye(3)[:2]  # two windows, orthogonal as embedded
    shifted = np.array(
        [[[0.0, 0.0, 1.0], [1.0, 0.1, 0.0]]]
    )  # shifted, window 1 looks like window 0
    sim = shift_invariant_similarity(u, shifted)
    assert sim[0, 1] == sim[1, 0] == pytest.approx(1 / np.linalg.norm([1.0, 0.1]))
    np.testing.assert_allclose(shift_invariant_similarity(u, None), u @ u.T)
    emb, truth = drifting_speakers(1)
    labels = cluster_embeddings(
        emb, "agglomerative", 0.4, 10, 5, 0.08, shifted=emb[None]
    )  # a no-op shift
    assert len(set(labels)) == 4


def speaker_lines(seed: int, dim: int = 32, windows_per_line: int = 5):
    """Unit window embeddings of three speakers taking turns in 12 lines (one region each), with a
    second view as if every window were pitch-shifted. Line 9 is speaker 0 restyled: as recorded it
    sits nearer speaker 1 (its own small cluster at first), shifted back it matches speaker 0."""
    rng = np.random.default_rng(seed)

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    centres = unit(rng.standard_normal((3, dim)))
    speakers = [0, 1, 2, 0, 1, 2, 1, 0, 2, 0, 1, 2]
    recorded, shifted, truth, initial, region = [], [], [], [], []
    for line, k in enumerate(speakers):
        for _ in range(windows_per_line):
            noise = 0.25 * unit(rng.standard_normal(dim))
            if line == 9:
                recorded.append(unit(centres[1] + 0.9 * unit(rng.standard_normal(dim)) + noise))
                shifted.append(unit(centres[0] + noise))
                initial.append(3)
            else:
                recorded.append(unit(centres[k] + noise))
                shifted.append(unit(rng.standard_normal(dim)))  # a voice shifted away from itself
                initial.append(k)
            truth.append(k)
            region.append(line)
    return (
        np.array(recorded),
        np.array(shifted),
        np.array(truth),
        np.array(initial),
        np.array(region),
    )


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resegmentation_returns_a_restyled_line_to_its_speaker(seed):
    recorded, shifted, truth, initial, region = speaker_lines(seed)
    same_region = np.r_[False, region[1:] == region[:-1]]
    prior = np.array([0.9, 0.1])
    labels = resegment_windows(
        np.stack([recorded, shifted]), initial, same_region, 80.0, 0.9, 0.5, 0.1, prior
    )
    assert same_partition(labels, truth)  # three speakers, the restyled line with speaker 0
    # without the shifted view the line's cluster still dies out, but its windows go to speaker 1
    unshifted = resegment_windows(
        recorded[None], initial, same_region, 80.0, 0.9, 0.5, 0.1, prior[:1]
    )
    assert len(set(unshifted)) == 3 and not same_partition(unshifted, truth)
    assert (
        len(set(unshifted[region == 9])) == 1
        and unshifted[region == 9][0] == unshifted[region == 1][0]
    )


def test_resegmentation_fixes_a_mislabelled_window_inside_a_line():
    recorded, shifted, truth, initial, region = speaker_lines(0)
    keep = region != 9
    recorded, truth, region = recorded[keep], truth[keep], region[keep]
    wrong = truth.copy()
    wrong[12] = (
        1  # a window of speaker 2's line labelled speaker 1 (the clustering's one-window flip)
    )
    # ... and made ambiguous, halfway between the two speakers
    recorded[12] = recorded[12] + recorded[6]
    same_region = np.r_[False, region[1:] == region[:-1]]
    labels = resegment_windows(recorded[None], wrong, same_region, 80.0, 0.9, 0.5, 0.1, np.ones(1))
    assert same_partition(labels, truth)
    assert resegment_windows(
        recorded[None], np.zeros(len(truth), int), same_region, 80.0, 0.9, 0.5, 0.1, np.ones(1)
    ).tolist() == [0] * len(truth)  # one speaker stays one


def test_window_regions():
    ids = window_regions([(0.0, 2.0), (3.0, 5.0)], np.array([0.5, 1.5, 2.5, 3.5]))
    assert ids.tolist() == [0, 0, -1, 1]


def test_vad_input_is_high_passed_and_levelled():
    t = np.arange(SR) / SR
    hum = (0.5 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)
    voice_band = (0.01 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    heard = OfflineDiarizer(
        OfflineDiarizerConfig(vad_highpass_hz=300, vad_level_dbfs=-20, vad_max_gain_db=30)
    ).vad_input(hum + voice_band)
    assert 20 * np.log10(np.sqrt(np.mean(heard**2))) == pytest.approx(-20, abs=0.5)
    spectrum = np.abs(np.fft.rfft(heard[SR // 2 :]))
    assert spectrum[1000 // 2] > 10 * spectrum[50 // 2]  # the hum is gone, the voice band stays
    assert np.array_equal(
        OfflineDiarizer(OfflineDiarizerConfig(vad_level_dbfs=None)).vad_input(hum), hum
    )
    hiss = (1e-3 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)  # -60 dBFS
    raised = OfflineDiarizer(
        OfflineDiarizerConfig(vad_level_dbfs=-12, vad_max_gain_db=20)
    ).vad_input(hiss)
    assert 20 * np.log10(np.sqrt(np.mean(raised**2))) == pytest.approx(-40, abs=0.5)  # gain capped

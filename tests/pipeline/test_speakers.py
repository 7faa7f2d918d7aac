"""Drama-level speaker linking and the speaker embedders."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.speakers import (
    ResemblyzerEmbedder,
    SpeakerCentroid,
    centroids_from,
    link_speakers,
    unit,
)


def centroid(episode, label, vector, order=0, first=0.0):
    return SpeakerCentroid(episode, label, np.asarray(vector, dtype=float), 5, first, order)


def test_one_actor_across_many_episodes_is_one_speaker():
    rng = np.random.default_rng(0)
    voices = unit(rng.standard_normal((3, 64)))
    cents = []
    truth = []
    for ep in range(50):
        for k in rng.permutation(3)[: rng.integers(1, 4)]:  # 1-3 of the actors per episode
            cents.append(
                centroid(
                    f"e{ep:02d}",
                    f"S{len(cents) % 7}",
                    voices[k] + 0.25 * unit(rng.standard_normal((1, 64)))[0],
                    order=ep,
                )
            )
            truth.append(int(k))
    ids = link_speakers(cents, threshold=0.6)
    assert len(set(ids)) == 3
    # the mapping from true actor to id is one-to-one
    pairs = set(zip(truth, ids))
    assert len(pairs) == 3


def test_same_episode_labels_are_never_merged_by_default():
    v = np.array([1.0, 0.0])
    cents = [centroid("e1", "S0", v), centroid("e1", "S1", v * 1.01), centroid("e2", "S0", v)]
    assert link_speakers(cents, 0.5) == [0, 1, 0]
    assert link_speakers(cents, 0.5, separate_same_episode=False) == [0, 0, 0]


def test_threshold_stops_merging_and_ids_follow_first_appearance():
    cents = [
        centroid("e2", "S0", [1, 0], order=1),
        centroid("e1", "S0", [0, 1], order=0, first=3.0),
        centroid("e1", "S1", [1, 0.05], order=0, first=1.0),
    ]
    ids = link_speakers(cents, threshold=0.9)
    # e1/S1 appears first (episode 0, 1.0 s) -> id 0, and e2/S0 is the same voice
    assert ids == [0, 1, 0]
    assert link_speakers(cents, threshold=0.99999) == [2, 1, 0]
    assert link_speakers([], 0.5) == []


def test_centroids_skip_zero_rows_and_average_unit_vectors():
    emb = np.array([[3.0, 0], [0, 0], [0, 2.0], [0, 5.0]])
    cents = centroids_from("e", ["A", "A", "B", "B"], emb, [1.0, 0.5, 2.0, 3.0])
    assert [(c.label, c.n_clips, c.first_s) for c in cents] == [("A", 1, 1.0), ("B", 2, 2.0)]
    np.testing.assert_allclose(cents[1].vector, [0, 1])


@pytest.fixture(scope="module")
def voices_audio():
    from fsclap.audio import resample
    from pipeline.synth.voices import Controls, synthesize, voice_catalogue

    cat = {v.voice_id: v for v in voice_catalogue()}
    texts = [
        "The letter was hidden in the old house by the river.",
        "Did you really call the doctor before dinner yesterday?",
        "I promised my sister that we would visit the market tomorrow.",
    ]
    out = {}
    for vid in ("espeak-f1", "espeak-m3"):
        out[vid] = [resample(synthesize(cat[vid], t, Controls())[0], 22050, 16000) for t in texts]
    return out


def test_resemblyzer_separates_two_generated_voices(voices_audio):
    emb = ResemblyzerEmbedder()
    a = unit(emb.embed(voices_audio["espeak-f1"]))
    b = unit(emb.embed(voices_audio["espeak-m3"]))
    assert a.shape == (3, 256)
    within = min((a @ a.T)[np.triu_indices(3, 1)].min(), (b @ b.T)[np.triu_indices(3, 1)].min())
    across = (a @ b.T).max()
    assert within > across
    # silence and empty clips give a zero vector (scored invalid_embedding downstream)
    assert not emb.embed([np.zeros(16000, np.float32), np.zeros(0, np.float32)]).any()


def test_resemblyzer_windows_cover_regions(voices_audio):
    emb = ResemblyzerEmbedder()
    track = np.concatenate([np.zeros(8000, np.float32), voices_audio["espeak-f1"][0]])
    end = len(track) / 16000
    vectors, spans = emb.embed_windows(track, 1.5, 0.75, [(0.5, end)])
    assert len(vectors) == len(spans) >= 2
    assert spans[0, 0] == pytest.approx(0.5) and spans[-1, 1] == pytest.approx(end, abs=0.02)
    assert (np.diff(spans[:, 0]) > 0).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_speaker_purity_weights_by_speech_time():
    from pipeline.speakers import speaker_purity

    # id0 holds 9 s of alice and 1 s of bob; id1 holds 4 s of bob; id2 is a split-off part of alice (3 s)
    assigned = ["id0", "id0", "id1", "id2"]
    truth = [{"alice": 9.0}, {"bob": 1.0}, {"bob": 4.0}, {"alice": 3.0, "bob": 0.0}]
    table, summary = speaker_purity(assigned, truth)
    rows = {r.speaker_id: r for r in table.itertuples()}
    assert rows["id0"].majority == "alice" and rows["id0"].purity == pytest.approx(0.9)
    assert rows["id1"].purity == 1.0 and rows["id2"].purity == 1.0
    assert summary["ids"] == 3 and summary["true_speakers"] == 2
    assert summary["purity"] == pytest.approx((9 + 4 + 3) / 17)
    assert summary["coverage"] == pytest.approx((9 + 4) / 17)  # alice is split over two ids
    _, perfect = speaker_purity(["a", "b"], [{"x": 2.0}, {"y": 1.0}])
    assert perfect["purity"] == perfect["coverage"] == 1.0
    with pytest.raises(ValueError, match="2 ids for 1 segments"):
        speaker_purity(["a", "b"], [{"x": 1.0}])
    empty_table, empty = speaker_purity(["a"], [{}])
    assert empty_table.empty and np.isnan(empty["purity"])

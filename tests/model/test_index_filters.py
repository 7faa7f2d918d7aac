"""Attribute filters on ``ClipIndex``: filtered results are the best-scoring clips that satisfy the filter."""

import numpy as np
import pandas as pd
import pytest

from fsclap.errors import FsclapError
from model.index import ClipIndex


def _corpus(n, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(n)],
            "audio_path": [f"/a/{i}.wav" for i in range(n)],
            "caption": [f"caption {i % 11}" for i in range(n)],
            "gender": rng.choice(["female", "male"], n),
            # a rare value (about 1 in 200) and some missing ones, with stray case and spaces
            "emotion": np.where(
                rng.random(n) < 0.005, " Sad", rng.choice(["happy", "neutral", None, ""], n)
            ),
            "drama_id": [f"d{i % 7}" for i in range(n)],
        }
    )
    return clips, unit(rng.normal(size=(n, dim))), unit(rng.normal(size=(n, dim)))


def _brute_force(vectors, query, mask, k):
    scores = vectors @ query
    scores[~mask] = -np.inf
    order = np.argsort(-scores, kind="stable")[: min(k, int(mask.sum()))]
    return order, scores[order]


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_filtered_search_returns_the_best_matches_that_satisfy_the_filter(tmp_path, kind):
    clips, audio, text = _corpus(3000)
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp", kind=kind)
    rng = np.random.default_rng(1)
    cases = [
        {"gender": "female"},
        {"emotion": "sad"},
        {"gender": "male", "drama_id": ["d1", "d4"]},
        {"emotion": ["SAD", "happy"], "gender": "female"},
    ]
    for filters in cases:
        mask = ix.select(filters)
        expected_mask = np.ones(len(clips), bool)
        for column, values in filters.items():
            values = [values] if isinstance(values, str) else values
            col = clips[column].fillna("").str.strip().str.lower()
            expected_mask &= col.isin([v.lower() for v in values]).to_numpy()
        assert (mask == expected_mask).all() and mask.any()
        for _ in range(5):
            query = rng.normal(size=audio.shape[1]).astype(np.float32)
            query /= np.linalg.norm(query)
            hits = ix.search(query, 20, allowed=mask)[0]
            rows, scores = _brute_force(audio, query, mask, 20)
            assert [h.row for h in hits] == rows.tolist()
            assert np.allclose([h.score for h in hits], scores, atol=1e-5)


def test_a_filter_no_clip_satisfies_returns_nothing(tmp_path):
    clips, audio, text = _corpus(50)
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp")
    mask = ix.select({"emotion": "furious"})
    assert mask is not None and not mask.any()
    assert ix.search(audio[0], 5, allowed=mask) == [[]]
    assert ix.select({}) is None and ix.select({"gender": []}) is None
    with pytest.raises(FsclapError, match="no such column"):
        ix.select({"language": "en"})
    with pytest.raises(FsclapError, match="mask has shape"):
        ix.search(audio[0], 5, allowed=np.ones(3, bool))


def test_facets_row_lookup_and_stored_vectors_follow_incremental_adds(tmp_path):
    clips, audio, text = _corpus(40)
    ix = ClipIndex.build(tmp_path / "ix", clips.iloc[:30], audio[:30], text[:30], "fp", kind="hnsw")
    before = dict(ix.facets(["gender", "emotion", "missing_column"]))
    assert set(before) == {"gender", "emotion"}
    assert sum(n for _, n in before["gender"]) == 30
    assert "" not in dict(before["emotion"]) and None not in dict(before["emotion"])
    assert ix.row_of("c35") is None
    ix.add(clips.iloc[25:], audio[25:], text[25:], "fp")
    assert ix.row_of("c35") == 35 and ix.row_of("nope") is None
    assert sum(n for _, n in ix.facets(["gender"])["gender"]) == 40
    assert ix.select({"gender": "female"}).shape == (40,)
    assert np.allclose(ix.vector(35), audio[35], atol=1e-6)
    assert np.allclose(ix.vector(35, target="text"), text[35], atol=1e-6)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_equal_scores_rank_in_row_order_filtered_or_not(tmp_path, kind):
    clips, audio, text = _corpus(60)
    for row in (41, 7, 23):  # three copies of one clip's audio
        audio[row] = audio[50]
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp", kind=kind)
    assert [h.row for h in ix.search(audio[50], 4)[0]] == [7, 23, 41, 50]
    mask = np.ones(60, bool)
    mask[23] = False
    assert [h.row for h in ix.search(audio[50], 3, allowed=mask)[0]] == [7, 41, 50]

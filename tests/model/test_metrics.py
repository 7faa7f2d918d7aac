"""Ranking metrics against hand-computed cases (duplicates, ties, several positives)."""

import numpy as np
import pytest
import torch

from model.metrics import caption_keys, evaluate_embeddings, rank_both_ways, rank_gallery


def rank(scores, qkeys, gkeys, **kw):
    scores = torch.as_tensor(scores, dtype=torch.float64)
    return rank_gallery(lambda a, b: scores[a:b], np.array(qkeys), np.array(gkeys), **kw)


def test_single_positive_ranks_and_ap():
    # query 0: positive (g0) ranked 2nd; query 1: positive (g1) ranked 1st
    r = rank([[0.5, 0.9, 0.1], [0.2, 0.8, 0.3]], [0, 1], [0, 1, 2])
    assert r.first_positive_rank.tolist() == [2, 1]
    assert r.ap_at.tolist() == pytest.approx([0.5, 1.0])
    assert r.summary() == {"R@1": 50.0, "R@5": 100.0, "R@10": 100.0, "mAP@10": 75.0}


def test_ties_with_negatives_count_against_the_model():
    # positive tied with two negatives: it ranks after both
    r = rank([[0.7, 0.7, 0.7, 0.1]], [0], [1, 0, 1, 2])
    assert r.first_positive_rank.tolist() == [3]
    assert r.ap_at.tolist() == pytest.approx([1 / 3])
    assert r.top[0, :3].tolist() == [0, 2, 1]  # negatives first (by index), then the positive


def test_several_positives_ap_at_10():
    # positives at ranks 1, 3 and 6 (of 3 positives): AP = (1/1 + 2/3 + 3/6) / 3
    scores = [[0.99, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]]
    gkeys = [5, 9, 5, 9, 9, 5, 9]
    r = rank(scores, [5], gkeys)
    assert r.first_positive_rank.tolist() == [1]
    assert r.ap_at[0] == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    assert r.n_positives.tolist() == [3]


def test_ap_normalised_by_min_positives_and_10():
    # 12 positives, all ranked at the top: AP@10 = 1
    r = rank([np.linspace(1, 0, 15)], [1], [1] * 12 + [0] * 3)
    assert r.ap_at[0] == pytest.approx(1.0)
    # a positive beyond rank 10 contributes nothing
    r = rank([np.linspace(1, 0, 12)], [1], [0] * 11 + [1])
    assert r.ap_at[0] == 0.0 and r.first_positive_rank[0] == 12


def test_duplicate_captions_are_all_positives():
    keys = caption_keys(["A sad man.", "a  sad man", "A happy woman!"])
    assert keys[0] == keys[1] != keys[2]
    # audio of clip 0 retrieves caption 1 (same text) first: a hit
    audio = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[0.9, 0.1], [1.0, 0.0], [0.0, 1.0]])
    res = evaluate_embeddings(audio, text, ["A sad man.", "a  sad man", "A happy woman!"])
    assert res.a2t.summary()["R@1"] == 100.0
    assert res.to_json()["n"] == 3


def test_independent_of_gallery_order_and_chunk_size():
    g = torch.Generator().manual_seed(0)
    n = 300
    audio = torch.nn.functional.normalize(torch.randn(n, 16, generator=g), dim=1)
    text = torch.nn.functional.normalize(audio + 0.8 * torch.randn(n, 16, generator=g), dim=1)
    captions = [f"caption {i % 120}" for i in range(n)]  # duplicated captions
    base = evaluate_embeddings(audio, text, captions, chunk_size=64).to_json()
    perm = torch.randperm(n, generator=g)
    shuffled = evaluate_embeddings(
        audio[perm], text[perm], [captions[i] for i in perm], chunk_size=7
    ).to_json()
    assert base == shuffled
    # quantised scores create many exact ties: still order- and chunk-independent
    qa, qt = (audio * 2).round() / 2, (text * 2).round() / 2
    a = evaluate_embeddings(qa, qt, captions, chunk_size=300).to_json()
    b = evaluate_embeddings(qa[perm], qt[perm], [captions[i] for i in perm], chunk_size=1).to_json()
    assert a == b


def test_constant_scores_are_at_chance_or_worse():
    n = 50
    res = evaluate_embeddings(torch.ones(n, 4), torch.ones(n, 4), [str(i) for i in range(n)])
    assert res.a2t.summary()["R@1"] == 0.0  # every tie goes against the model
    assert res.a2t.first_positive_rank.tolist() == [n] * n


def test_query_without_positive_is_an_error():
    with pytest.raises(ValueError, match="no positive"):
        rank([[0.1, 0.2]], [3], [0, 1])


def _reference(scores: np.ndarray, qkeys, gkeys, k: int = 10):
    """The protocol spelled out per query: sort by (-score, positive after negative, index)."""
    ranks, aps, tops = [], [], []
    for i, row in enumerate(scores):
        pos = np.array([g == qkeys[i] for g in gkeys])
        order = sorted(range(len(row)), key=lambda j: (-row[j], pos[j], j))
        rel = pos[order]
        ranks.append(1 + int(np.argmax(rel)))
        hits = np.cumsum(rel[:k])
        aps.append(
            sum(hits[j] / (j + 1) for j in range(min(k, len(rel))) if rel[j]) / min(pos.sum(), k)
        )
        tops.append(order[:k])
    return np.array(ranks), np.array(aps), np.array(tops)


@pytest.mark.parametrize("seed", range(6))
def test_matches_a_per_query_reference_on_tie_heavy_scores(seed):
    rng = np.random.default_rng(seed)
    n_gallery, n_queries = int(rng.integers(12, 60)), int(rng.integers(1, 40))
    gkeys = rng.integers(0, int(rng.integers(2, 12)), n_gallery)
    qkeys = rng.choice(gkeys, n_queries)
    scores = rng.integers(0, 4, (n_queries, n_gallery)).astype(np.float32)  # many ties
    got = rank_gallery(lambda a, b: torch.from_numpy(scores[a:b]), qkeys, gkeys, chunk_size=7)
    ranks, aps, tops = _reference(scores, qkeys, gkeys)
    assert got.first_positive_rank.tolist() == ranks.tolist()
    assert np.allclose(got.ap_at, aps)
    assert got.top.tolist() == tops.tolist()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("band_cap", [256, 1])
def test_both_ways_from_one_pass_match_the_reference(seed, band_cap):
    """rank_both_ways reads t2a from the columns of the a2t score chunks: on small-integer embeddings
    (exact scores, ties everywhere) both directions follow the per-query reference; band_cap=1 sends
    most text queries through the fallback that ranks a column on its own."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 70))
    keys = rng.integers(0, int(rng.integers(1, 15)), n)
    audio = torch.as_tensor(rng.integers(-1, 2, (n, 3)), dtype=torch.float32)
    text = torch.as_tensor(rng.integers(-1, 2, (n, 3)), dtype=torch.float32)
    a2t, t2a = rank_both_ways(
        audio, text, keys, chunk_size=int(rng.integers(1, 9)), band_cap=band_cap
    )
    scores = (audio @ text.T).numpy()
    for got, matrix in ((a2t, scores), (t2a, scores.T)):
        ranks, aps, tops = _reference(matrix, keys, keys)
        assert got.first_positive_rank.tolist() == ranks.tolist()
        assert np.allclose(got.ap_at, aps)
        assert got.top.tolist() == [t[: got.top.shape[1]] for t in tops.tolist()]
        assert got.n_positives.tolist() == [int((keys == k).sum()) for k in keys]


def test_both_ways_equal_two_separate_rankings_on_float_embeddings():
    g = torch.Generator().manual_seed(3)
    n = 500
    audio = torch.nn.functional.normalize(torch.randn(n, 32, generator=g), dim=1)
    text = torch.nn.functional.normalize(audio + torch.randn(n, 32, generator=g), dim=1)
    keys = caption_keys([f"caption {i % 170}" for i in range(n)])
    a2t, t2a = rank_both_ways(audio, text, keys, chunk_size=64)
    # t2a ranked on its own rows (text @ audio.T): the same figures up to float rounding of the scores
    alone = rank_gallery(lambda a, b: text[a:b].double() @ audio.T.double(), keys, keys)
    assert t2a.summary() == alone.summary()
    assert (t2a.first_positive_rank == alone.first_positive_rank).mean() > 0.99


def test_both_ways_tie_across_the_top_cut():
    # every score equal: each top list is the negatives by index, then the positives by index,
    # although the running top lists only hold 11 of the 15 tied items
    keys = np.array([0] * 12 + [1, 2, 3])
    a2t, t2a = rank_both_ways(torch.ones(15, 2), torch.ones(15, 2), keys, chunk_size=4)
    for result in (a2t, t2a):
        assert result.top[0].tolist() == [12, 13, 14, 0, 1, 2, 3, 4, 5, 6]
        assert result.top[12].tolist() == list(range(10))
        assert result.first_positive_rank.tolist() == [4] * 12 + [15] * 3

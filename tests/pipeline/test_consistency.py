"""Eq. 4–5 of the paper (speaker-consistency filter): vectorised vs the direct float64 loop."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.consistency import (
    DEFAULT_THRESHOLDS,
    REASON_INVALID,
    REASON_KEPT,
    REASON_LOW,
    REASON_SINGLE,
    REASON_UNASSIGNED,
    consistency_scores,
    default_threshold,
    mean_similarity,
    mean_similarity_loop,
)


def clustered(rng, sizes, dim=32, spread=0.6):
    centres = rng.standard_normal((len(sizes), dim))
    rows, labels = [], []
    for k, n in enumerate(sizes):
        rows.append(centres[k] + spread * rng.standard_normal((n, dim)))
        labels += [f"spk{k}"] * n
    return np.concatenate(rows), labels


@pytest.mark.parametrize("n,dim", [(2, 3), (5, 192), (40, 256), (300, 16)])
def test_vectorised_equals_direct_loop(n, dim):
    rng = np.random.default_rng(n)
    v = rng.standard_normal((n, dim)) * rng.uniform(0.1, 10, size=(n, 1))  # norms must not matter
    fast = mean_similarity(v)
    slow = mean_similarity_loop(v)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_float32_input_is_scored_in_float64():
    rng = np.random.default_rng(1)
    v = rng.standard_normal((50, 192)).astype(np.float32)
    np.testing.assert_allclose(
        mean_similarity(v), mean_similarity_loop(v.astype(np.float64)), atol=1e-12
    )


def test_known_values():
    # identical directions -> cos 1 -> s̄ 1; opposite -> cos -1 -> 0; orthogonal -> 0.5
    assert mean_similarity(np.array([[1.0, 0], [2.0, 0]])).tolist() == [1.0, 1.0]
    assert mean_similarity(np.array([[1.0, 0], [-3.0, 0]])).tolist() == [0.0, 0.0]
    np.testing.assert_allclose(mean_similarity(np.array([[1.0, 0], [0, 1.0]])), [0.5, 0.5])
    # three clips: i=0 is orthogonal to one, identical to the other -> (0.5 + 1) / 2
    s = mean_similarity(np.array([[1.0, 0], [0, 1.0], [1.0, 0]]))
    np.testing.assert_allclose(s, [0.75, 0.5, 0.75])


def test_scores_per_cluster_match_loop_and_threshold_applies():
    rng = np.random.default_rng(7)
    v, labels = clustered(rng, [30, 12, 5])
    # an intruder: a clip of speaker 1 labelled as speaker 0 (the error the paper filters)
    v = np.vstack([v, v[35] + 0.05 * rng.standard_normal(v.shape[1])])
    labels = labels + ["spk0"]
    result = consistency_scores(v, labels, threshold=0.65)
    labels_arr = np.array(labels)
    for label in set(labels):
        rows = np.flatnonzero(labels_arr == label)
        np.testing.assert_allclose(
            result.consistency[rows], mean_similarity_loop(v[rows]), atol=1e-12
        )
        assert (result.cluster_size[rows] == len(rows)).all()
    assert result.kept.tolist() == (result.consistency >= 0.65).tolist()
    assert set(result.reason[result.kept]) == {REASON_KEPT}
    assert set(result.reason[~result.kept]) <= {REASON_LOW}
    # the intruder is the least consistent clip of its cluster and is dropped
    spk0 = np.flatnonzero(labels_arr == "spk0")
    assert result.consistency[-1] == result.consistency[spk0].min()
    assert not result.kept[-1]


def test_threshold_is_inclusive():
    v = np.array([[1.0, 0], [0, 1.0]])  # s̄ = 0.5 exactly
    assert consistency_scores(v, ["a", "a"], threshold=0.5).kept.all()
    assert not consistency_scores(v, ["a", "a"], threshold=0.5000001).kept.any()


def test_single_clip_cluster_is_explicit():
    v = np.array([[1.0, 0], [1.0, 0.1], [0, 1.0]])
    result = consistency_scores(v, ["a", "a", "b"], threshold=0.65)
    assert np.isnan(result.consistency[2])
    assert result.reason[2] == REASON_SINGLE and not result.kept[2]
    assert result.cluster_size[2] == 1
    kept = consistency_scores(v, ["a", "a", "b"], threshold=0.65, keep_single=True)
    assert kept.kept[2] and kept.reason[2] == REASON_SINGLE


def test_invalid_embeddings_and_unassigned_are_left_out_of_the_means():
    rng = np.random.default_rng(3)
    good = rng.standard_normal((4, 8))
    v = np.vstack([good, np.zeros(8), np.full(8, np.nan), good[:1]])
    labels = ["a", "a", "a", "a", "a", "a", None]
    result = consistency_scores(v, labels, threshold=0.0)
    np.testing.assert_allclose(result.consistency[:4], mean_similarity_loop(good), atol=1e-12)
    assert result.reason[4] == REASON_INVALID and result.reason[5] == REASON_INVALID
    assert result.reason[6] == REASON_UNASSIGNED
    assert np.isnan(result.consistency[4:]).all() and not result.kept[4:].any()
    assert (result.cluster_size[:4] == 4).all()


def test_integer_labels_and_negative_means_unassigned():
    v = np.eye(3)[[0, 0, 1, 1, 2]] + 0.01
    result = consistency_scores(v, [0, 0, 1, 1, -1], threshold=0.9)
    assert result.reason.tolist() == [REASON_KEPT] * 4 + [REASON_UNASSIGNED]


def test_empty_and_mismatched_input():
    result = consistency_scores(np.zeros((0, 4)), [], threshold=0.65)
    assert len(result.kept) == 0
    with pytest.raises(ValueError, match="one label per embedding row"):
        consistency_scores(np.zeros((3, 4)), ["a"], threshold=0.65)


def test_default_thresholds_documented_per_model():
    assert default_threshold("campplus") == 0.65  # the paper's value
    assert set(DEFAULT_THRESHOLDS) >= {"campplus", "resemblyzer"}
    with pytest.raises(ValueError, match="no default consistency threshold"):
        default_threshold("xvector")


def test_the_drama_hash_follows_every_input_file_and_keeps_its_format(tmp_path):
    import os

    import pandas as pd

    from fsclap.io import sha256_file
    from pipeline.consistency import Consistency, build_segments_manifest
    from pipeline.segments import SEGMENT_COLUMNS, empty_frame
    from pipeline.stage import StageContext, short_hash

    stage = Consistency(context=StageContext(data_root=tmp_path))
    folder = stage.context.layout.drama_segments_dir("d")
    folder.mkdir(parents=True)
    first = folder / "d-0001.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(first)
    before, paths = stage.drama_state("d")
    assert paths == [str(first)]
    assert before == short_hash([(first.name, sha256_file(first))], 24)  # as keys were made before
    assert stage.drama_state("d")[0] == before
    pd.DataFrame({"a": [2]}).to_parquet(first)
    os.utime(first, ns=(1, 1))  # a rewrite is seen by its new mtime
    changed = stage.drama_state("d")[0]
    assert changed != before
    pd.DataFrame({"a": [1]}).to_parquet(folder / "d-0002.parquet")
    assert stage.drama_state("d")[0] not in (before, changed)

    table = tmp_path / "segments" / "d.parquet"
    table.parent.mkdir(parents=True, exist_ok=True)
    empty_frame(SEGMENT_COLUMNS).to_parquet(table)
    out = build_segments_manifest(tmp_path)
    written = out.stat().st_mtime_ns
    assert build_segments_manifest(tmp_path).stat().st_mtime_ns == written  # nothing new: kept
    os.utime(table, ns=(2, 2))
    assert build_segments_manifest(tmp_path).stat().st_mtime_ns != written  # rebuilt

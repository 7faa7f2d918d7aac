"""The one-pass scans against numpy on random chunks with ties."""

import numpy as np
import pytest

from model.ranking_kernels import SEGMENT, scan_columns, scan_rows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_rows_counts_and_top_lists(dtype):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, (7, 2 * SEGMENT + 37)).astype(dtype)  # many ties, several segments
    best = scores[:, 3].copy()
    counts, values, columns = scan_rows(scores, best, 6)
    assert counts.tolist() == (scores >= best[:, None]).sum(1).tolist()
    assert np.array_equal(values, -np.sort(-scores, axis=1)[:, :6])
    assert np.array_equal(np.take_along_axis(scores, columns, 1), values)


def test_scan_columns_keeps_running_figures_over_chunks():
    rng = np.random.default_rng(1)
    n_cols = 2 * SEGMENT + 37
    scores = rng.integers(0, 6, (30, n_cols)).astype(np.float32)
    low, high = np.full(n_cols, 2.0), np.full(n_cols, 3.0)
    above, size = np.zeros(n_cols, np.int64), np.zeros(n_cols, np.int64)
    band_values, band_rows = np.full((n_cols, 4), -np.inf), np.zeros((n_cols, 4), np.int64)
    top_values = np.full((n_cols, 5), -np.inf)
    top_rows, filled = np.zeros((n_cols, 5), np.int64), np.zeros(n_cols, np.int64)
    last = np.full(n_cols, -np.inf)
    for start in range(0, 30, 7):
        chunk = np.ascontiguousarray(scores[start : start + 7].T)
        scan_columns(
            chunk, start, low, high, above, size, band_values, band_rows, top_values, top_rows, filled,
            last,
        )  # fmt: skip
    assert above.tolist() == (scores > 3).sum(0).tolist()
    assert size.tolist() == ((scores >= 2) & (scores <= 3)).sum(0).tolist()
    for j in range(n_cols):  # the band's first rows, in row order
        rows = np.flatnonzero((scores[:, j] >= 2) & (scores[:, j] <= 3))[:4]
        assert band_rows[j, : len(rows)].tolist() == rows.tolist()
        assert band_values[j, : len(rows)].tolist() == scores[rows, j].tolist()
    assert np.array_equal(top_values, -np.sort(-scores.T, axis=1)[:, :5])
    assert np.array_equal(last, top_values[:, -1])
    assert np.array_equal(np.take_along_axis(scores.T, top_rows, 1), top_values)

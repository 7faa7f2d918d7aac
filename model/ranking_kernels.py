"""One-pass scans of a score chunk for :mod:`model.metrics` (numba, compiled on first use and cached).

Ranking a query needs several figures from its score row: how many items score at least its best
positive, and its few best items; ranking both directions from one score matrix needs the same
figures per column, kept over the chunks. With torch each figure is one more pass over the chunk,
and a bool reduction runs at about half the speed of the matrix product that made the chunk, so
at 100k clips the bookkeeping cost several times the product. These kernels read every score
once per direction and update all of that direction's figures together, in parallel threads.

A top list holds its values in descending order with the items' indices; an item equal to the last
value of a full list is not inserted, so ties at the end are resolved by the caller (see
``model.metrics._order_candidates``).
"""

from __future__ import annotations

import numba
import numpy as np

SEGMENT = 256  # a row is read in segments: its top list is only touched where a segment beats it


@numba.njit(inline="always")
def _insert(values, indices, slot, filled, value, index):
    """Put ``(value, index)`` into row ``slot`` of the descending top lists ``values``/``indices``
    (``filled`` entries used); returns the new fill."""
    size = values.shape[1]
    if filled == size:
        if not value > values[slot, size - 1]:
            return filled
        k = size - 2
    else:
        k = filled - 1
        filled += 1
    while k >= 0 and values[slot, k] < value:
        values[slot, k + 1] = values[slot, k]
        indices[slot, k + 1] = indices[slot, k]
        k -= 1
    values[slot, k + 1] = value
    indices[slot, k + 1] = index
    return filled


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_rows(scores, best, depth):
    """Per row ``i``: how many scores are ``>= best[i]``, and its top ``depth`` (values, columns)."""
    n_rows, n_cols = scores.shape
    counts = np.zeros(n_rows, dtype=np.int64)
    top_values = np.full((n_rows, depth), -np.inf, dtype=scores.dtype)
    top_columns = np.zeros((n_rows, depth), dtype=np.int64)
    for i in numba.prange(n_rows):
        threshold = best[i]
        count = 0
        filled = 0
        last = -np.inf  # the last value of the full list
        for start in range(0, n_cols, SEGMENT):
            stop = min(start + SEGMENT, n_cols)
            peak = -np.inf
            for j in range(start, stop):  # branch-free: vectorised
                v = scores[i, j]
                count += v >= threshold
                peak = max(peak, v)
            if peak > last or filled < depth:  # rare once the list is full
                for j in range(start, stop):
                    v = scores[i, j]
                    if v > last or filled < depth:
                        filled = _insert(top_values, top_columns, i, filled, v, j)
                        if filled == depth:
                            last = top_values[i, depth - 1]
        counts[i] = count
    return counts, top_values, top_columns


@numba.njit(parallel=True, cache=True, fastmath=True)
def scan_columns(
    columns,
    first_row,
    low,
    high,
    above,
    band_size,
    band_values,
    band_rows,
    top_values,
    top_rows,
    top_filled,
    top_last,
):
    """Update running per-column figures with a chunk of rows ``first_row, first_row + 1, ...``,
    given transposed (``columns[j]``: column ``j`` of the chunk, contiguous): ``above[j]``: scores
    ``> high[j]``; scores in ``[low[j], high[j]]`` are counted in ``band_size[j]`` and kept
    (value, row) while the band has room; ``top_*``: the column's best (``top_last``: the last
    value of a full list, else -inf)."""
    n_cols, n_rows = columns.shape
    capacity = band_values.shape[1]
    depth = top_values.shape[1]
    for j in numba.prange(n_cols):
        lo, hi, last = low[j], high[j], top_last[j]
        count = 0
        in_band = 0
        peak = -np.inf
        for i in range(n_rows):  # branch-free: vectorised
            v = columns[j, i]
            count += v > hi
            in_band += (v >= lo) & (v <= hi)
            peak = max(peak, v)
        above[j] += count
        if in_band:
            for i in range(n_rows):
                v = columns[j, i]
                if v >= lo and v <= hi:
                    k = band_size[j]
                    if k < capacity:
                        band_values[j, k] = v
                        band_rows[j, k] = first_row + i
                    band_size[j] = k + 1
        if peak > last or top_filled[j] < depth:
            filled = top_filled[j]
            for i in range(n_rows):
                v = columns[j, i]
                if v > last or filled < depth:
                    filled = _insert(top_values, top_rows, j, filled, v, first_row + i)
                    if filled == depth:
                        last = top_values[j, depth - 1]
            top_filled[j] = filled
            top_last[j] = last

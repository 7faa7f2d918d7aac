"""Sentence-length shaping, overlap/too-short reasons and clip cutting."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from pipeline.segments import (
    EPISODE_COLUMNS,
    REASON_OVERLAP,
    REASON_TOO_SHORT,
    SEGMENT_COLUMNS,
    Segment,
    SegmentationConfig,
    SegmentRow,
    cut_clip,
    join_text,
    merge_short,
    overlapping,
    quietest_point,
    segment_frame,
    segment_reasons,
    shape_segments,
    split_long,
)


def test_merge_short_joins_same_speaker_across_short_pause_only():
    segs = [
        Segment(0.0, 0.4, "S0", "Hi"),
        Segment(0.6, 3.0, "S0", "how are you?"),
        Segment(3.2, 3.5, "S1", "Ok"),
        Segment(5.0, 5.3, "S1", "bye"),
    ]
    out = merge_short(segs, min_s=1.0, max_s=15.0, merge_gap_s=0.5)
    assert out[0] == Segment(0.0, 3.0, "S0", "Hi how are you?")
    # different speaker: not merged although short; too far apart: not merged
    assert out[1:] == segs[2:]


def test_merge_respects_max_length_and_leaves_long_neighbours_alone():
    segs = [Segment(0.0, 14.8, "S0"), Segment(15.0, 15.5, "S0")]
    assert merge_short(segs, 1.0, 15.0, 0.5) == segs
    two_long = [
        Segment(0.0, 3.0, "S0"),
        Segment(3.1, 6.0, "S0"),
    ]  # both ≥ min_s: separate sentences
    assert merge_short(two_long, 1.0, 15.0, 0.5) == two_long


def test_join_text_cjk_and_latin():
    assert join_text("你好", "世界") == "你好世界"
    assert join_text("Hello", "world") == "Hello world"
    assert join_text(None, "x") == "x" and join_text("x", None) == "x"


def test_split_long_pieces_fit_bounds():
    segs = split_long([Segment(0.0, 40.0, "S1", "text")], max_s=15.0, min_s=1.0)
    assert all(1.0 <= s.duration_s <= 15.0 for s in segs)
    assert segs[0].start_s == 0.0 and segs[-1].end_s == 40.0
    assert all(a.end_s == b.start_s for a, b in zip(segs, segs[1:]))
    assert {s.speaker for s in segs} == {"S1"} and all(s.text is None for s in segs)


def test_split_at_quietest_point():
    sr = 16000
    audio = np.ones(sr * 20, dtype=np.float32) * 0.5
    audio[int(8.3 * sr) : int(8.5 * sr)] = 0.0  # a pause at 8.3-8.5 s
    cut_at = quietest_point(audio, sr)
    segs = split_long([Segment(0.0, 20.0, "S0")], max_s=15.0, min_s=1.0, cut_at=cut_at)
    assert len(segs) == 2
    assert 8.3 <= segs[0].end_s <= 8.5


def test_shape_segments_config_validation():
    with pytest.raises(ValueError, match="at least 2"):
        SegmentationConfig(min_s=5, max_s=8)
    out = shape_segments([Segment(0, 0.5, "S0"), Segment(0.7, 30, "S0")], SegmentationConfig())
    assert all(s.duration_s <= 15 for s in out)
    assert out[0].start_s == 0


def test_overlap_and_too_short_reasons():
    segs = [Segment(0, 3, "S0"), Segment(2.5, 5, "S1"), Segment(6, 6.4, "S0"), Segment(7, 9, "S1")]
    assert overlapping(segs).tolist() == [True, True, False, False]
    assert segment_reasons(segs, 1.0) == [REASON_OVERLAP, REASON_OVERLAP, REASON_TOO_SHORT, None]
    # a segment inside a long one overlaps it
    assert overlapping(
        [Segment(0, 10, "S0"), Segment(2, 3, "S1"), Segment(4, 5, "S1")]
    ).tolist() == [True, True, True]
    assert overlapping([]).tolist() == []


def test_cut_clip_writes_exact_span(tmp_path):
    sr = 24000
    audio = np.linspace(-1, 1, sr * 4, dtype=np.float32)
    path = cut_clip(audio, sr, Segment(1.0, 2.5, "S0"), tmp_path / "a" / "clip.flac")
    data, rate = sf.read(path, dtype="float32")
    assert rate == sr and len(data) == int(1.5 * sr)
    np.testing.assert_allclose(data, audio[sr : int(2.5 * sr)], atol=1 / 32768 * 1.01)


def test_segment_rows_make_the_tables_columns_and_dtypes():
    # the record is the schema: the manifest's contract order holds every field once
    assert sorted(SEGMENT_COLUMNS) == sorted(f.name for f in dataclasses.fields(SegmentRow))
    row = SegmentRow(
        segment_id="e_0000",
        drama_id="d",
        episode_id="e",
        episode_index=3,
        start_s=1.0,
        end_s=2.5,
        duration_s=1.5,
        text=None,
        episode_speaker="S0",
        embedding_model="resemblyzer",
        embedding_path="segments/d/e.npy",
        embedding_row=0,
        clip_path="clips/d/e/e_0000.flac",
        reason=None,
        diarizer="offline",
    )
    frame = segment_frame([row])
    assert list(frame.columns) == EPISODE_COLUMNS and "kept" not in frame
    assert frame.loc[0, "episode_index"] == 3 and str(frame["episode_index"].dtype) == "Int64"
    empty = segment_frame([])
    assert list(empty.columns) == EPISODE_COLUMNS
    assert dict(empty.dtypes) == dict(frame.dtypes)
    full = segment_frame([row], SEGMENT_COLUMNS)
    assert list(full.columns) == SEGMENT_COLUMNS and not full.loc[0, "kept"]

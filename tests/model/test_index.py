import numpy as np
import pandas as pd
import pytest

from fsclap.errors import FsclapError
from model.index import ClipIndex


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _corpus(n, dim=16, seed=0, offset=0):
    rng = np.random.default_rng(seed)
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i + offset}" for i in range(n)],
            "audio_path": [f"/a/{i}.wav" for i in range(n)],
            "caption": [f"caption {(i + offset) % 7}" for i in range(n)],
        }
    )
    return clips, _unit(rng.normal(size=(n, dim))), _unit(rng.normal(size=(n, dim)))


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_build_open_search(tmp_path, kind):
    clips, audio, text = _corpus(200)
    ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp1", kind=kind)
    ix = ClipIndex.open(tmp_path / "ix")
    assert len(ix) == 200 and ix.meta["kind"] == kind
    hits = ix.search(audio[17], k=5)[0]
    assert hits[0].row == 17 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    exact = np.argsort(-(audio @ audio[17]))[:5]
    assert [h.row for h in hits] == exact.tolist()


def test_caption_search_dedupes_identical_captions(tmp_path):
    clips, audio, text = _corpus(50)
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp")
    results = ix.search_captions(text[3], k=5)
    captions = [c for c, _, _ in results]
    assert len(captions) == len(set(captions)) == 5
    assert captions[0] == clips.caption[3]


def test_incremental_add_skips_known_clips(tmp_path):
    clips, audio, text = _corpus(30)
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp")
    more, a2, t2 = _corpus(10, seed=1, offset=25)  # c25..c29 already indexed
    assert ix.add(more, a2, t2, "fp") == 5
    reopened = ClipIndex.open(tmp_path / "ix")
    assert len(reopened) == 35
    assert reopened.search(a2[9], k=1)[0][0].row == 34


def test_refuses_another_model(tmp_path):
    clips, audio, text = _corpus(10)
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fingerprint-A")
    with pytest.raises(FsclapError, match="built with checkpoint"):
        ix.check_model("fingerprint-B")
    with pytest.raises(FsclapError, match="built with checkpoint"):
        ix.add(clips, audio, text, "fingerprint-B")


def test_missing_corrupt_or_inconsistent_index(tmp_path):
    with pytest.raises(FsclapError, match="no index"):
        ClipIndex.open(tmp_path / "none")
    clips, audio, text = _corpus(10)
    ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp")
    (tmp_path / "ix" / "audio.faiss").write_bytes(b"junk")
    with pytest.raises(FsclapError, match="unreadable"):
        ClipIndex.open(tmp_path / "ix")
    ClipIndex.build(tmp_path / "ix2", clips, audio, text, "fp")
    clips.iloc[:5].to_parquet(tmp_path / "ix2" / "clips.parquet")
    with pytest.raises(FsclapError, match="inconsistent"):
        ClipIndex.open(tmp_path / "ix2")


def test_rejects_bad_vectors(tmp_path):
    clips, audio, text = _corpus(5)
    audio[0, 0] = np.nan
    with pytest.raises(FsclapError, match="NaN"):
        ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp")
    with pytest.raises(FsclapError, match="same length"):
        ClipIndex.build(tmp_path / "ix", clips.iloc[:3], _corpus(5)[1], _corpus(5)[2], "fp")


def test_hnsw_search_breadth_is_stored_and_overridable(tmp_path):
    """ef_search is kept in index.json; a wider search finds more of the exact top-10 on hard data."""
    rng = np.random.default_rng(4)
    n, dim = 4000, 64
    clips = pd.DataFrame(
        {"clip_id": [f"c{i}" for i in range(n)], "audio_path": ["/a.wav"] * n, "caption": ["x"] * n}
    )
    audio = _unit(rng.normal(size=(n, dim)))
    ClipIndex.build(tmp_path / "ix", clips, audio, audio, "fp", kind="hnsw", ef_search=10)
    assert ClipIndex.open(tmp_path / "ix").meta["ef_search"] == 10
    queries = _unit(rng.normal(size=(200, dim)))
    truth = np.argsort(-(queries @ audio.T), axis=1)[:, :10]

    def recall(ix):
        found = ix.search(queries, k=10)
        return np.mean([len({h.row for h in hits} & set(t)) / 10 for hits, t in zip(found, truth)])

    narrow, wide = (
        recall(ClipIndex.open(tmp_path / "ix")),
        recall(ClipIndex.open(tmp_path / "ix", ef_search=400)),
    )
    assert wide > narrow + 0.05 and wide > 0.95
    with pytest.raises(FsclapError, match="ef_search must be a positive integer"):
        ClipIndex.open(tmp_path / "ix", ef_search=0)
    # exact indexes record no breadth and accept (ignore) one
    ClipIndex.build(tmp_path / "flat", clips, audio, audio, "fp", kind="exact")
    assert "ef_search" not in ClipIndex.open(tmp_path / "flat", ef_search=50).meta


def _random_corpus(n, dim, seed):
    rng = np.random.default_rng(seed)
    clips = pd.DataFrame(
        {"clip_id": [f"c{i}" for i in range(n)], "audio_path": ["/a.wav"] * n, "caption": ["x"] * n}
    )
    return clips, _unit(rng.normal(size=(n, dim))), _unit(rng.normal(size=(n, dim)))


def test_hnsw_calibrates_its_search_breadth_to_a_recall_target(tmp_path, monkeypatch):
    """Without --ef-search the index widens efSearch until the exact top-10 of its own cross-modal
    queries is found (target share), records the measured recall, and recalibrates when it grows."""
    import model.index as index_module

    monkeypatch.setattr(
        index_module, "TARGET_RECALL", 0.995
    )  # unreachable at the starting breadth here
    clips, audio, text = _random_corpus(5000, 128, seed=5)
    ix = ClipIndex.build(tmp_path / "ix", clips, audio, text, "fp", kind="hnsw")
    cal = ClipIndex.open(tmp_path / "ix").meta["calibration"]
    chosen = ix.meta["ef_search"]
    assert chosen > index_module.HNSW_EF_SEARCH and ix.meta["ef_search_auto"]
    assert min(cal["recall@10"].values()) >= 0.995 or chosen == index_module.MAX_EF_SEARCH
    # the recorded recall is what searching at that breadth gives
    rows = np.sort(np.random.default_rng(0).choice(5000, size=256, replace=False))
    truth = np.argsort(-(text[rows] @ audio.T), axis=1)[:, :10]
    found = ClipIndex.open(tmp_path / "ix").search(text[rows], k=10, target="audio")
    measured = np.mean([len({h.row for h in hits} & set(t)) / 10 for hits, t in zip(found, truth)])
    assert measured == pytest.approx(cal["recall@10"]["text_to_audio"], abs=0.01)
    # growing the corpus recalibrates; a fixed breadth stays fixed and only its recall is measured
    more, a2, t2 = _random_corpus(2000, 128, seed=6)
    more["clip_id"] = [f"n{i}" for i in range(2000)]
    ix.add(more, a2, t2, "fp")
    assert (
        ClipIndex.open(tmp_path / "ix").meta["calibration"]["recall@10"]
        and ix.meta["count"] == 7000
    )
    fixed = ClipIndex.build(tmp_path / "fixed", clips, audio, text, "fp", kind="hnsw", ef_search=16)
    assert fixed.meta["ef_search"] == 16 and not fixed.meta["ef_search_auto"]
    assert min(fixed.meta["calibration"]["recall@10"].values()) < 0.995

import numpy as np
import pandas as pd
import pytest
import torch

from model.analysis import attribute_breakdown, breakdown_markdown, plot_embedding_map
from model.metrics import evaluate_embeddings


def test_breakdown_finds_the_attribute_the_model_confuses():
    # embeddings encode gender perfectly but pitch not at all
    rng = np.random.default_rng(0)
    n = 120
    gender = np.array(["female", "male"])[rng.integers(0, 2, n)]
    pitch = np.array(["low", "normal", "high"])[rng.integers(0, 3, n)]
    base = np.where(gender[:, None] == "female", [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    audio = torch.tensor(base + 0.01 * rng.normal(size=(n, 3)), dtype=torch.float32)
    text = torch.tensor(base + 0.01 * rng.normal(size=(n, 3)), dtype=torch.float32)
    captions = [f"{g} {p} {i}" for i, (g, p) in enumerate(zip(gender, pitch))]
    res = evaluate_embeddings(audio, text, captions)
    frame = pd.DataFrame({"gender": gender, "pitch": pitch})
    out = attribute_breakdown(res, frame)
    assert out["gender"]["t2a"]["agreement@1"] == 100.0
    assert out["pitch"]["t2a"]["agreement@1"] < 60.0
    assert set(out["pitch"]["a2t"]["levels"]) == {"low", "normal", "high"}
    assert sum(v["n"] for v in out["pitch"]["a2t"]["levels"].values()) == n
    assert "| gender | 100.0 | 100.0 |" in breakdown_markdown(out)


def test_labels_outside_the_vocabulary_are_left_out_of_the_breakdown(caplog):
    rng = np.random.default_rng(1)
    n = 40
    gender = np.array(["female", "male", "Robot", "unknown"])[np.arange(n) % 4]
    audio = torch.tensor(rng.normal(size=(n, 4)), dtype=torch.float32)
    res = evaluate_embeddings(audio, audio.clone(), [f"c{i}" for i in range(n)])
    out = attribute_breakdown(res, pd.DataFrame({"gender": gender}))
    assert set(out["gender"]["t2a"]["levels"]) == {"female", "male"}
    assert sum(v["n"] for v in out["gender"]["t2a"]["levels"].values()) == n // 2
    assert "values outside ['female', 'male'] left out" in caplog.text and "'robot'" in caplog.text


def check_embedding_map(fig, png, labels: np.ndarray, clips: int, method: str) -> None:
    """One audio and one text scatter per label, ``clips`` points each, a clip's text point next to
    its audio point (text = audio + small noise); the PNG is that figure and not blank."""
    from matplotlib.image import imread

    (ax,) = fig.axes
    scatters = {c.get_label(): np.asarray(c.get_offsets()) for c in ax.collections}
    groups = sorted(set(labels.tolist()))
    assert set(scatters) == {f"{m} {g}" for g in groups for m in ("audio", "text")}
    audio = np.concatenate([scatters[f"audio {g}"] for g in groups])
    text = np.concatenate([scatters[f"text {g}"] for g in groups])
    assert len(audio) == len(text) == clips and np.isfinite(audio).all()
    assert f"({method.upper()}, {clips} clips)" in ax.get_title()
    paired = np.linalg.norm(audio - text, axis=1)
    unpaired = np.linalg.norm(audio - np.roll(text, 7, axis=0), axis=1)
    # measured: median paired / unpaired distance 0.012 (t-SNE, 40 clips), 0.058 (UMAP, 60 clips)
    assert np.median(paired) < 0.3 * np.median(unpaired)
    image = imread(png)
    height, width = image.shape[:2]
    assert height >= 200 and width / height == pytest.approx(
        fig.get_figwidth() / fig.get_figheight(), rel=0.01
    )
    assert image[..., :3].std() > 0.05  # not one flat colour


def test_embedding_map_png(tmp_path, artifacts_dir, closed_figures):
    figures = closed_figures
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(60, 8))
    text = audio + 0.1 * rng.normal(size=(60, 8))
    labels = np.array(["happy", "sad", "angry"])[np.arange(60) % 3]
    out = plot_embedding_map(
        audio, text, tmp_path / "map.png", labels=labels, method="tsne", max_points=40
    )
    check_embedding_map(figures[-1], out, labels, clips=40, method="tsne")  # a seeded subset
    out = plot_embedding_map(
        audio, text, artifacts_dir / "embedding_map_example.png", labels=labels, method="umap"
    )
    check_embedding_map(figures[-1], out, labels, clips=60, method="umap")

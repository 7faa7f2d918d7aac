import numpy as np
import pandas as pd
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


def test_embedding_map_png(tmp_path, artifacts_dir):
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(60, 8))
    text = audio + 0.1 * rng.normal(size=(60, 8))
    labels = np.array(["happy", "sad", "angry"])[np.arange(60) % 3]
    out = plot_embedding_map(audio, text, tmp_path / "map.png", labels=labels, method="tsne")
    assert out.stat().st_size > 10_000
    plot_embedding_map(
        audio, text, artifacts_dir / "embedding_map_example.png", labels=labels, method="umap"
    )

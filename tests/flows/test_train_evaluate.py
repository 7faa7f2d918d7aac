"""train-fsclap and evaluate-fsclap on the dataset build-corpus published: defaults resolved from
the data root, resume, artifacts, parameter validation, and data-parallel training via torchrun."""

from __future__ import annotations

import base64
import json

import pandas as pd
import pytest

from flows.evaluate import evaluate_fsclap
from flows.train import train_fsclap
from fsclap.errors import FsclapError

# a small offline model, as the model tests use (MiniLM text encoder frozen)
TINY = [
    "model.d_model=32",
    "model.embed_dim=32",
    "model.heads=4",
    "model.dropout=0.0",
    "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0, dropout: 0.1}",
    "freeze_text=true",
    "workers=0",
    "epochs=2",
    "batch_size=4",
    "grad_accum=1",
]


def png_uri(path) -> str:
    """The data URI of the PNG file at ``path`` (what an image artifact of that file holds)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="module")
def trained(first_build):
    data_root = first_build["data_root"]
    state = train_fsclap(data_root=data_root, train_overrides=TINY, return_state=True)
    return {"state": state, "data_root": data_root, "flow_run_id": state.state_details.flow_run_id}


def test_train_on_the_latest_dataset(trained, api):
    state, data_root = trained["state"], trained["data_root"]
    assert state.is_completed(), state.message
    out = state.result()
    version = (data_root / "datasets" / "LATEST").read_text().strip()
    run_dir = data_root / "runs" / f"fsclap-{version}"
    assert out["run_dir"] == str(run_dir) and out["finished"] and out["epochs_done"] == 2
    assert out["best_epoch"] in (1, 2) and out["best_metrics"]["n"] == len(
        pd.read_parquet(data_root / "datasets" / version / "val.parquet")
    )
    assert (run_dir / "checkpoints" / "best" / "model.safetensors").is_file()

    runs = api.task_runs(trained["flow_run_id"])
    train_run = next(r for r in runs if r.name.startswith("train"))
    assert train_run.state.name == "Completed" and {"fsclap-train", "gpu"} <= set(train_run.tags)
    found = api.artifacts(trained["flow_run_id"])
    assert f"best epoch: **{out['best_epoch']}**" in found["train-fsclap-summary"].data
    assert "| audio→text |" in found["train-fsclap-summary"].data
    rows = found["train-fsclap-metrics"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert [row["epoch"] for row in rows] == [1, 2]
    # the image is the run's curves.png, byte for byte (its content: tests/model/test_training.py)
    assert found["train-fsclap-curves"].type == "image"
    assert found["train-fsclap-curves"].data == png_uri(run_dir / "curves.png")

    # the same run again: the finished run is resumed, nothing is trained twice
    again = train_fsclap(data_root=data_root, train_overrides=TINY)
    assert again["epochs_done"] == 2 and again["best_epoch"] == out["best_epoch"]
    assert again["best_metrics"] == out["best_metrics"]


def test_evaluate_the_trained_run(trained, api):
    data_root = trained["data_root"]
    state = evaluate_fsclap(data_root=data_root, split="val", return_state=True)
    assert state.is_completed(), state.message
    out = state.result()
    version = (data_root / "datasets" / "LATEST").read_text().strip()
    metrics = json.loads(
        (data_root / "runs" / f"fsclap-{version}" / "eval" / "val" / "metrics.json").read_text()
    )
    assert metrics == {k: out[k] for k in ("n", "a2t", "t2a")}
    assert metrics["n"] == len(pd.read_parquet(data_root / "datasets" / version / "val.parquet"))
    assert set(metrics["a2t"]) == {"R@1", "R@5", "R@10", "mAP@10"}
    found = api.artifacts(state.state_details.flow_run_id)
    assert "| bi | audio→text |" in found["evaluate-fsclap-report"].data
    rows = found["evaluate-fsclap-metrics"].data
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert [(r["direction"], r["R@1"]) for r in rows] == [
        ("audio→text", round(metrics["a2t"]["R@1"], 1)),
        ("text→audio", round(metrics["t2a"]["R@1"], 1)),
    ]
    embeddings = data_root / "runs" / f"fsclap-{version}" / "eval" / "val" / "embeddings.png"
    assert found["evaluate-fsclap-embeddings"].data == png_uri(embeddings)


def test_bad_parameters_fail_before_any_work(first_build, tmp_path):
    data_root = str(first_build["data_root"])
    # each flow validates its parameters first: the run fails with a one-line reason
    for flow, bad, reason in (
        (
            train_fsclap,
            {"train_manifest": str(tmp_path / "a.parquet")},  # without val_manifest
            "give both train_manifest and val_manifest, or neither",
        ),
        (train_fsclap, {"nproc_per_node": 0}, "nproc_per_node: Input should be greater than"),
        (train_fsclap, {"train_overrides": ["epochs"]}, "train_overrides: expected"),
        (evaluate_fsclap, {"rerank": -1}, "rerank: Input should be greater than or equal to 0"),
        (
            evaluate_fsclap,
            {"manifest": "m.parquet", "dataset": "d"},
            "give a dataset (with split) or a manifest, not both",
        ),
    ):
        state = flow(data_root=data_root, **bad, return_state=True)
        assert state.is_failed() and "\n" not in state.message, state.message
        assert state.message.startswith(
            f"Flow run encountered an exception: FsclapError: invalid parameters: {reason}"
        ), state.message
    # ... after Prefect's type check against the signature
    state = evaluate_fsclap(data_root=data_root, split="dev", return_state=True)
    assert state.is_failed() and "split: Input should be 'train', 'val' or 'test'" in state.message
    with pytest.raises(FsclapError, match="invalid training config"):
        train_fsclap(data_root=data_root, run_dir=tmp_path / "run", train_overrides=["epochz=3"])
    with pytest.raises(FsclapError, match="no published dataset"):
        train_fsclap(data_root=tmp_path / "empty")
    assert not (tmp_path / "run").exists()
    with pytest.raises(FsclapError, match="checkpoint not found"):
        evaluate_fsclap(data_root=data_root, checkpoint=tmp_path / "nothing")


def test_training_fans_out_with_torchrun(first_build, tmp_path):
    """nproc_per_node=2: the task launches torchrun; two processes train one model with DDP
    (gloo on CPU here, NCCL on GPU workers) and the flow reads the outcome from the run."""
    run_dir = tmp_path / "ddp"
    out = train_fsclap(
        data_root=first_build["data_root"],
        run_dir=run_dir,
        nproc_per_node=2,
        train_overrides=[*TINY, "batch_size=2", "cpu_threads=1"],
    )
    assert out["world_size"] == 2 and out["finished"] and out["best_epoch"] in (1, 2)
    assert json.loads((run_dir / "train_config.json").read_text())["world_size"] == 2
    assert (run_dir / "checkpoints" / "best" / "model.safetensors").is_file()

"""Trainer and ``fsclap train``: learning, exact resume, bad input, NaN handling, configs."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from fsclap.cli import main as cli
from fsclap.errors import FsclapError
from fsclap.manifest import ClipManifest
from model.factory import load_checkpoint
from model.train_config import load_train_config
from model.training import Trainer, TrainingDiverged, TrainResult

TINY = [
    "model.d_model=32",
    "model.embed_dim=32",
    "model.heads=4",
    "model.dropout=0.0",
    # the tone corpus of conftest tests the log-mel path; measured prosody is tested on speech (slow test)
    "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0, dropout: 0.1, prosody: false, normalise: false}",
    "augment=false",  # voice-invariance augmentation is tested in test_augment.py
    "freeze_text=true",
    "workers=0",
    "val_rerank_k=3",
    "pair_loss=hard",
    "pair_negatives=2",
]


def _subset(manifest: Path, n: int, out: Path) -> Path:
    frame = pd.read_csv(manifest).head(n)
    frame["wav_fp"] = [str(manifest.parent / p) for p in frame["wav_fp"]]
    frame.to_csv(out, index=False)
    return out


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def check_curves(fig, png: Path, step_rows: list[dict], epoch_rows: list[dict]) -> None:
    """curves.png shows the logged numbers: the loss panel one line per loss part over the logged
    steps, the validation panel each metric over the epochs; the PNG is that figure, not blank."""
    from matplotlib.image import imread

    loss_ax, val_ax = fig.axes[:2]
    losses = {line.get_label(): line for line in loss_ax.get_lines()}
    assert "loss" in losses and set(losses) <= {"loss", "loss_bi", "loss_pair"}, set(losses)
    for key, line in losses.items():
        np.testing.assert_allclose(line.get_xdata(), [float(r["step"]) for r in step_rows])
        np.testing.assert_allclose(line.get_ydata(), [float(r[key]) for r in step_rows])
    metrics = {line.get_label(): line for line in val_ax.get_lines()}
    assert {"a2t_mAP@10", "t2a_mAP@10", "a2t_R@1", "t2a_R@1"} <= set(metrics), set(metrics)
    for key, line in metrics.items():
        np.testing.assert_allclose(line.get_xdata(), [float(r["epoch"]) for r in epoch_rows])
        np.testing.assert_allclose(line.get_ydata(), [float(r[key]) for r in epoch_rows])
    image = imread(png)
    height, width = image.shape[:2]
    assert height >= 200 and width / height == pytest.approx(
        fig.get_figwidth() / fig.get_figheight(), rel=0.01
    )
    assert image[..., :3].std() > 0.05  # not one flat colour


def test_cli_train_learns_on_style_corpus(style_corpus, tmp_path, artifacts_dir, closed_figures):
    """A few CPU epochs on 96 clips: retrieval far above chance on held-out clips."""
    train_m, val_m = style_corpus
    run = tmp_path / "run"
    figures = closed_figures
    sets = [
        f"--set={s}"
        for s in TINY + ["epochs=5", "batch_size=16", "grad_accum=1", "lr_scratch=2e-3"]
    ]
    assert (
        cli(["train", "--train", str(train_m), "--val", str(val_m), "--out", str(run), *sets]) == 0
    )
    rows = _rows(run / "metrics.csv")
    assert len(rows) == 5
    steps = _rows(run / "train_log.csv")  # one row every log_every (10) optimizer steps
    assert [int(r["step"]) for r in steps] == list(range(10, int(rows[-1]["step"]) + 1, 10))
    assert len(steps) >= 2
    check_curves(figures[-1], run / "curves.png", steps, rows)
    info = json.loads((run / "checkpoints" / "best" / "info.json").read_text())
    assert f"best epoch {info['epoch']}" in figures[-1].axes[1].get_title()
    best = info["metrics"]
    # 32 val clips, 16 captions x 2: random embeddings give mAP@10 ~ 20
    from model.metrics import evaluate_embeddings

    g = torch.Generator().manual_seed(0)
    caps = [r for r in pd.read_csv(val_m)["style_prompt"]]
    chance = evaluate_embeddings(
        torch.randn(32, 8, generator=g), torch.randn(32, 8, generator=g), caps
    ).to_json()
    assert (
        best["a2t_mAP@10"] > 2 * chance["a2t"]["mAP@10"]
        and best["t2a_mAP@10"] > 2 * chance["t2a"]["mAP@10"]
    )
    assert best["a2t_R@1"] >= 30 and best["t2a_R@1"] >= 30
    # the run directory is a checkpoint for load_checkpoint (best epoch)
    model = load_checkpoint(run, "cpu")
    emb = model.embed_manifest(ClipManifest.read(val_m), batch_size=7, show_progress=False)
    again = evaluate_embeddings(emb.audio, emb.text, emb.captions).to_json()
    assert again["a2t"]["mAP@10"] == pytest.approx(best["a2t_mAP@10"], abs=0.15)
    (artifacts_dir / "model_train_curves.png").write_bytes((run / "curves.png").read_bytes())


def test_resume_reproduces_an_uninterrupted_run(style_corpus, tmp_path):
    train_m = _subset(style_corpus[0], 40, tmp_path / "train.csv")
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    base = TINY + ["epochs=2", "batch_size=8", "grad_accum=2", "seed=3"]
    manifests = ClipManifest.read(train_m), ClipManifest.read(val_m)
    Trainer(load_train_config(None, base), *manifests, tmp_path / "straight").fit()
    # killed mid-epoch (after 2 of 3 optimizer steps of epoch 1), then resumed by the same command
    stopped = Trainer(
        load_train_config(None, base + ["stop_after_steps=2"]), *manifests, tmp_path / "resumed"
    ).fit()
    assert not stopped.finished and stopped.steps == 2
    # what the run left on disk reads back as the same result (torchrun jobs are read this way)
    on_disk = TrainResult.from_run_dir(tmp_path / "resumed")
    assert (on_disk.steps, on_disk.epochs_done, on_disk.finished) == (2, 0, False)
    assert on_disk.schedule == stopped.schedule and on_disk.best_epoch == stopped.best_epoch
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "last" / "state.json").read_text())
    assert state["epoch"] == 0 and state["batch_in_epoch"] == 4
    done = Trainer(load_train_config(None, base), *manifests, tmp_path / "resumed").fit()
    assert done.finished and done.steps == 6
    finished = TrainResult.from_run_dir(tmp_path / "resumed")
    assert finished.to_json() == done.to_json() and finished.best_metrics == done.best_metrics
    a = load_file(tmp_path / "straight" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key
    ra, rb = (
        _rows(tmp_path / "straight" / "metrics.csv"),
        _rows(tmp_path / "resumed" / "metrics.csv"),
    )

    def strip(rows):  # timings and the float-noisy running loss differ between runs
        return [
            {k: v for k, v in r.items() if k not in ("clips_per_s", "epoch_seconds", "train_loss")}
            for r in rows
        ]

    assert strip(ra) == strip(rb)
    # a finished run is not trained again; a changed setting is refused
    again = Trainer(load_train_config(None, base), *manifests, tmp_path / "resumed").fit()
    assert again.steps == 6
    with pytest.raises(FsclapError, match="different settings.*lr_fusion"):
        Trainer(
            load_train_config(None, base + ["lr_fusion=0.5"]), *manifests, tmp_path / "resumed"
        ).fit()


def test_bad_rows_are_skipped_and_listed(style_corpus, tmp_path, capsys):
    train_m = _subset(style_corpus[0], 24, tmp_path / "train.csv")
    frame = pd.read_csv(train_m)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    bad = pd.DataFrame(
        [
            {
                "clip_id": "missing",
                "wav_fp": str(tmp_path / "nope.wav"),
                "style_prompt": "a calm voice",
            },
            {
                "clip_id": "corrupt",
                "wav_fp": str(tmp_path / "corrupt.wav"),
                "style_prompt": "a calm voice",
            },
            {
                "clip_id": "empty_file",
                "wav_fp": str(tmp_path / "empty.wav"),
                "style_prompt": "a calm voice",
            },
            {"clip_id": "no_caption", "wav_fp": frame["wav_fp"][0], "style_prompt": "  "},
        ]
    )
    pd.concat([frame.iloc[:5], bad, frame.iloc[5:]]).to_csv(train_m, index=False)
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    run = tmp_path / "run"
    sets = [f"--set={s}" for s in TINY + ["epochs=1", "batch_size=8", "grad_accum=1"]]
    assert (
        cli(["train", "--train", str(train_m), "--val", str(val_m), "--out", str(run), *sets]) == 0
    )
    skipped = {r["clip_id"]: r["reason"] for r in _rows(run / "skipped.csv")}
    assert set(skipped) == {"missing", "corrupt", "empty_file", "no_caption"}
    assert "not found" in skipped["missing"] and "empty caption" in skipped["no_caption"]
    assert "skipped 4 manifest row(s)" in capsys.readouterr().out
    assert (run / "checkpoints" / "best" / "model.safetensors").is_file()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(style_corpus, tmp_path, monkeypatch):
    train_m = _subset(style_corpus[0], 32, tmp_path / "train.csv")
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    cfg = load_train_config(
        None, TINY + ["epochs=1", "batch_size=8", "grad_accum=1", "save_every=1"]
    )
    trainer = Trainer(cfg, ClipManifest.read(train_m), ClipManifest.read(val_m), tmp_path / "run")
    calls = {"n": 0}
    real = trainer.objective.forward

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        if calls["n"] == 3:
            out.total = out.total * float("nan")
        return out

    monkeypatch.setattr(trainer.objective, "forward", sometimes_nan)
    with pytest.raises(
        TrainingDiverged, match=r"loss became nan at epoch 1, step 3.*checkpoints/last \(step 2\)"
    ):
        trainer.fit()
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] == 2
    weights = load_file(tmp_path / "run" / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_cli_train_errors_are_one_line(tmp_path, style_corpus, capsys):
    train_m, val_m = style_corpus
    assert (
        cli(
            [
                "train",
                "--train",
                str(train_m),
                "--val",
                str(val_m),
                "--out",
                str(tmp_path / "r"),
                "--set",
                "nonsense=1",
            ]
        )
        == 2
    )
    assert "nonsense" in capsys.readouterr().err
    assert (
        cli(
            [
                "train",
                "--train",
                str(tmp_path / "none.csv"),
                "--val",
                str(val_m),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    assert "manifest not found" in capsys.readouterr().err
    assert (
        cli(["train", "--train", str(train_m), "--val", str(train_m), "--out", str(tmp_path / "r")])
        == 2
    )
    assert "no split column" in capsys.readouterr().err


def test_train_config_contract_keys_and_param_groups(style_corpus, tmp_path):
    cfg = load_train_config(
        None,
        [
            "backbone=offline",
            "epochs=3",
            "batch_size=8",
            "grad_accum=4",
            "lr_backbone=1e-5",
            "lr_fusion=2e-4",
            "seed=7",
            "fusion=false",
            "separation=false",
            "hn_loss=false",
        ],
    )
    assert (cfg.epochs, cfg.batch_size, cfg.grad_accum, cfg.seed) == (3, 8, 4, 7)
    model_cfg = cfg.model_config_resolved()
    assert not model_cfg.fusion and not model_cfg.separation and model_cfg.pooling == "mean"
    assert load_train_config(None, ["pair_loss=none"]).model_config_resolved().pair_scoring is False
    defaults = (
        load_train_config()
    )  # batch and epochs are derived from the corpus (tests/model/test_train_config.py)
    assert (
        defaults.preset,
        defaults.lr_backbone,
        defaults.lr_fusion,
        defaults.weight_decay,
        defaults.gamma,
    ) == ("auto", 4e-5, 1e-4, 0.01, 0.15)
    with pytest.raises(FsclapError, match="backbone"):
        load_train_config(None, ["backbone=whisper"])
    with pytest.raises(FsclapError, match="pooling=native"):
        load_train_config(None, ["pooling=native", "fusion=false", "separation=false"])
    train_m = _subset(style_corpus[0], 16, tmp_path / "train.csv")
    cfg = load_train_config(
        None,
        TINY[:4]
        + [
            "freeze_text=false",
            "batch_size=8",
            "lr_backbone=1e-5",
            "lr_fusion=2e-4",
            "lr_scratch=3e-3",
        ],
    )
    trainer = Trainer(cfg, ClipManifest.read(train_m), ClipManifest.read(train_m), tmp_path / "run")
    lrs = {g["name"]: (g["lr"], g["weight_decay"]) for g in trainer.optimizer.param_groups}
    warmup = trainer.schedule.warmup_steps
    assert warmup == round(0.1 * trainer.schedule.total_steps) > 1
    assert (
        lrs["backbone"][0] == pytest.approx(1e-5 / warmup) and lrs["backbone"][1] == 0.01
    )  # warm-up: first step at 1/warmup of peak
    assert lrs["fusion"][0] == pytest.approx(2e-4 / warmup) and lrs["fusion_nd"][1] == 0.0
    assert lrs["scratch"][0] == pytest.approx(3e-3 / warmup)
    n_text = sum(p.numel() for p in trainer.model.backbone.text.parameters())
    assert (
        sum(
            p.numel()
            for g in trainer.optimizer.param_groups
            if g["name"].startswith("backbone")
            for p in g["params"]
        )
        == n_text
    )


@pytest.mark.slow
def test_cli_train_learns_on_generated_speech(tmp_path):
    """End to end on the project's speech generator: `fsclap synth style` (speaker-disjoint splits, every
    caption distinct) -> `fsclap train` on its single manifest -> retrieval above chance on the val voices."""
    from model.metrics import evaluate_embeddings

    corpus = tmp_path / "corpus"
    assert cli(["synth", "style", "--out", str(corpus), "--n", "160", "--seed", "0"]) == 0
    manifest = corpus / "manifest.parquet"
    run = tmp_path / "run"
    sets = [
        "epochs=12",
        "batch_size=16",
        "grad_accum=1",
        "freeze_text=true",
        "pair_loss=none",
        "workers=0",
        "model.d_model=64",
        "model.embed_dim=64",
        "model.audio={dim: 96, blocks: 3, max_seconds: 6.0}",
    ]
    assert (
        cli(
            [
                "train",
                "--train",
                str(manifest),
                "--val",
                str(manifest),
                "--out",
                str(run),
                *[f"--set={s}" for s in sets],
            ]
        )
        == 0
    )
    best = json.loads((run / "checkpoints" / "best" / "info.json").read_text())["metrics"]
    val = ClipManifest.read(manifest, validate_levels=False).split("val")
    g = torch.Generator().manual_seed(0)
    chance = [
        evaluate_embeddings(
            torch.randn(len(val), 8, generator=g),
            torch.randn(len(val), 8, generator=g),
            list(val.frame["caption"]),
        ).to_json()
        for _ in range(20)
    ]
    chance_map = np.mean([c["a2t"]["mAP@10"] + c["t2a"]["mAP@10"] for c in chance]) / 2
    assert (best["a2t_mAP@10"] + best["t2a_mAP@10"]) / 2 > 1.5 * chance_map, (best, chance_map)


def test_resume_refuses_a_run_on_different_data(style_corpus, tmp_path):
    train_m, val_m = style_corpus
    run = tmp_path / "run"
    sets = [f"--set={s}" for s in TINY + ["epochs=1", "batch_size=16", "grad_accum=1"]]
    assert (
        cli(["train", "--train", str(train_m), "--val", str(val_m), "--out", str(run), *sets]) == 0
    )
    smaller = _subset(train_m, 40, tmp_path / "smaller.csv")
    with pytest.raises(FsclapError, match="different train data"):
        train_run = load_train_config(None, [s.split("=", 1)[1] for s in sets])
        Trainer(train_run, ClipManifest.read(smaller), ClipManifest.read(val_m), run).fit()


class Payload:
    """Runs code when unpickled: what a tampered trainer.pt would carry."""

    def __reduce__(self):
        return (print, ("unpickled a payload",))


def test_resume_refuses_damaged_or_tampered_state_in_one_line(style_corpus, tmp_path, capsys):
    train_m, val_m = style_corpus
    run = tmp_path / "run"
    sets = [f"--set={s}" for s in TINY + ["epochs=1", "batch_size=16", "grad_accum=1"]]
    args = ["train", "--train", str(train_m), "--val", str(val_m), "--out", str(run), *sets]
    assert cli(args) == 0
    last = run / "checkpoints" / "last"
    trainer_pt = (last / "trainer.pt").read_bytes()
    state_json = (last / "state.json").read_text()
    torch.save({"optimizer": Payload()}, last / "trainer.pt")
    capsys.readouterr()
    assert cli([*args, "--set=resume=true"]) == 2
    out = capsys.readouterr()
    assert "not a plain trainer state" in out.err and "unpickled a payload" not in out.out
    (last / "trainer.pt").write_bytes(trainer_pt)
    (last / "state.json").write_text(state_json[: len(state_json) // 2])
    assert cli([*args, "--set=resume=true"]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after the model's load bars
    assert last_line.startswith("error: cannot resume from") and "not a trainer state" in last_line


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_mixed_precision_trains_and_resumes(style_corpus, tmp_path, dtype):
    """The GPU precision paths, run on the CPU: autocast through the whole model (masks, fusion, pair
    scores, loss) and, for fp16, the gradient scaler, whose state is resumed with the run."""
    train_m = _subset(style_corpus[0], 24, tmp_path / "train.csv")
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    base = TINY + ["epochs=2", "batch_size=8", "grad_accum=1", f"amp_dtype={dtype}"]
    manifests = ClipManifest.read(train_m), ClipManifest.read(val_m)
    first = Trainer(
        load_train_config(None, base + ["stop_after_steps=4"]), *manifests, tmp_path / "run"
    )
    assert first.amp_dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    assert first.scaler.is_enabled() == (dtype == "fp16")
    assert first.fit().steps == 4
    state = torch.load(tmp_path / "run" / "checkpoints" / "last" / "trainer.pt", weights_only=True)
    if dtype == "fp16":
        assert state["scaler"]["scale"] > 0
    done = Trainer(load_train_config(None, base), *manifests, tmp_path / "run").fit()
    assert done.finished and done.steps == 6
    rows = _rows(tmp_path / "run" / "metrics.csv")
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    weights = load_file(tmp_path / "run" / "checkpoints" / "best" / "model.safetensors")
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())
    # the default stays float32 on the CPU
    assert (
        Trainer(load_train_config(None, TINY), *manifests, tmp_path / "default").amp_dtype is None
    )


def _schedule_log(caplog):
    import logging

    caplog.set_level(logging.INFO, logger="fsclap.model.training")
    root = logging.getLogger("fsclap")
    if root.propagate:
        return lambda: None
    root.addHandler(
        caplog.handler
    )  # the CLI's logging setup stops propagation to caplog's root handler
    return lambda: root.removeHandler(caplog.handler)


def test_schedule_is_logged_saved_and_few_steps_warned(style_corpus, tmp_path, caplog):
    """The paper preset on 40 clips: 10 optimizer steps, stated in the log, warned about, saved with the run."""
    train_m = _subset(style_corpus[0], 40, tmp_path / "train.csv")
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    manifests = ClipManifest.read(train_m), ClipManifest.read(val_m)
    done = _schedule_log(caplog)
    try:
        result = Trainer(
            load_train_config("paper", TINY + ["stop_after_steps=1"]),
            *manifests,
            tmp_path / "paper",
        ).fit()
    finally:
        done()
    assert (
        "40 training clips -> batch 40 x 2 (effective 80), 10 epochs, 1 steps/epoch, 10 optimizer steps"
        in caplog.text
    )
    assert "[preset paper]" in caplog.text
    warnings = [
        r
        for r in caplog.records
        if r.levelname == "WARNING" and "optimizer steps" in r.getMessage()
    ]
    assert len(warnings) == 1 and "only 10 optimizer steps" in warnings[0].getMessage()
    assert result.schedule.total_steps == 10
    saved = json.loads((tmp_path / "paper" / "train_config.json").read_text())["schedule"]
    assert (
        saved["batch_size"],
        saved["grad_accum"],
        saved["effective_batch"],
        saved["epochs"],
    ) == (40, 2, 80, 10)
    # the derived default trains enough steps: no warning
    caplog.clear()
    done = _schedule_log(caplog)
    try:
        trainer = Trainer(
            load_train_config(None, TINY + ["stop_after_steps=1"]), *manifests, tmp_path / "auto"
        )
        trainer.fit()
    finally:
        done()
    assert trainer.schedule.total_steps >= 100 and "only" not in caplog.text
    assert (
        "40 training clips -> batch 16 x 1 (effective 16), 60 epochs, 2 steps/epoch, 120"
        in caplog.text
    )


def test_resumed_run_keeps_its_schedule(style_corpus, tmp_path, monkeypatch):
    """A run resumes with the schedule it started with, even if the derivation rule changed in between."""
    import model.training as training

    train_m = _subset(style_corpus[0], 40, tmp_path / "train.csv")
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    manifests = ClipManifest.read(train_m), ClipManifest.read(val_m)
    base = TINY + ["target_steps=10", "seed=3"]
    first = Trainer(
        load_train_config(None, base + ["stop_after_steps=3"]), *manifests, tmp_path / "run"
    )
    planned = first.schedule
    assert (planned.batch_size, planned.epochs, planned.total_steps) == (16, 10, 20)
    assert first.fit().steps == 3
    state = json.loads((tmp_path / "run" / "checkpoints" / "last" / "state.json").read_text())
    assert state["schedule"]["total_steps"] == 20

    def another_rule(config, n_train, world=1):
        raise AssertionError("a resumed run must not derive its schedule again")

    monkeypatch.setattr(training, "resolve_schedule", another_rule)
    resumed = Trainer(load_train_config(None, base), *manifests, tmp_path / "run")
    assert resumed.schedule == planned
    done = resumed.fit()
    assert done.finished and done.steps == 20 and done.epochs_done == 10


def test_recaptioned_training_resumes_exactly(style_corpus, tmp_path):
    """Re-phrased captions are drawn per (seed, epoch, clip), so a killed run resumes to the same weights, also
    with the frozen text encoder's features computed per batch for captions that are not cached."""
    frame = pd.read_csv(_subset(style_corpus[0], 32, tmp_path / "t.csv"))
    # conftest's captions read "A {gender} voice with {pitch} pitch, speaking {speed} with {energy} energy."
    words = frame["style_prompt"].str.extract(
        r"A (\w+) voice with (\w+) pitch, speaking (\w+) with (\w+) energy"
    )
    frame["gender"], frame["pitch"], frame["speed"], frame["energy"] = (
        words[0],
        words[1],
        words[2],
        words[3],
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    val_m = _subset(style_corpus[1], 8, tmp_path / "val.csv")
    base = TINY + ["epochs=2", "batch_size=8", "grad_accum=2", "seed=4", "recaption=1.0"]
    manifests = ClipManifest.read(tmp_path / "train.csv"), ClipManifest.read(val_m)
    straight = Trainer(load_train_config(None, base), *manifests, tmp_path / "straight")
    assert (
        straight.train_set.caption(0)[0] != frame["style_prompt"][0]
    )  # re-phrased by the caption writer
    straight.fit()
    Trainer(
        load_train_config(None, base + ["stop_after_steps=3"]), *manifests, tmp_path / "resumed"
    ).fit()
    Trainer(load_train_config(None, base), *manifests, tmp_path / "resumed").fit()
    a = load_file(tmp_path / "straight" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoints" / "last" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=0), key

"""The training schedule: derived from the corpus size (preset auto), the paper's preset, explicit overrides."""

import pytest

from fsclap.errors import FsclapError
from model.train_config import (
    FEW_STEPS,
    PAPER_SETTINGS,
    Schedule,
    load_train_config,
    resolve_schedule,
)


def _plan(n: int, *sets: str, world: int = 1):
    s = resolve_schedule(load_train_config(None, list(sets)), n, world)
    return s.batch_size, s.grad_accum, s.epochs, s.total_steps


@pytest.mark.parametrize(
    "n, expected",
    [
        # clips: (micro-batch, accumulation, epochs, optimizer steps) — effective batch ~ sqrt(N), ~400 steps, >= 10 epochs
        (
            100,
            (16, 1, 60, 360),
        ),  # epochs capped at 60: a tiny corpus would otherwise mostly validate
        (300, (16, 1, 23, 414)),
        (1_000, (32, 1, 13, 403)),
        (3_000, (48, 1, 10, 620)),
        (30_000, (88, 2, 10, 1_700)),
        (100_000, (96, 2, 10, 5_210)),  # the paper's batch 96 x 2 and 10 epochs
    ],
)
def test_auto_schedule_at_every_corpus_size(n, expected):
    assert _plan(n) == expected


def test_auto_schedule_grows_smoothly_and_stays_affordable():
    sizes = [50, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 1_000_000]
    plans = [resolve_schedule(load_train_config(), n) for n in sizes]
    effective = [p.effective_batch for p in plans]
    assert effective == sorted(effective) and effective[-1] == 192 and effective[0] == 16
    assert all(p.total_steps >= FEW_STEPS for p in plans)
    # the clip passes of a laptop-sized run stay small (~27 clips/s on 2 CPU cores)
    assert all(p.total_steps * p.effective_batch <= 16_000 for p in plans if p.train_clips <= 1_000)
    assert all(p.warmup_steps == round(0.1 * p.total_steps) for p in plans)


def test_explicit_settings_win_and_the_rest_is_derived():
    assert _plan(300, "batch_size=32") == (
        32,
        1,
        45,
        405,
    )  # accumulation 1, epochs from target_steps
    assert _plan(300, "epochs=20") == (16, 1, 20, 360)
    assert _plan(300, "batch_size=32", "grad_accum=1", "epochs=20") == (32, 1, 20, 180)
    assert _plan(300, "target_steps=100") == (16, 1, 10, 180)  # at least 10 epochs
    assert _plan(100_000, "grad_accum=4") == (48, 4, 10, 5_210)
    s = resolve_schedule(load_train_config(None, ["batch_size=32", "warmup_epochs=2"]), 300)
    assert s.derived == ("grad_accum", "epochs") and s.warmup_steps == 18
    # an explicit batch larger than the corpus is cut to the corpus, as before
    assert _plan(40, "batch_size=96", "grad_accum=1", "epochs=2") == (40, 1, 2, 2)


def test_batch_is_per_process_and_the_effective_batch_global():
    s = resolve_schedule(load_train_config(), 100_000, world=4)
    assert (s.batch_size, s.grad_accum, s.effective_batch) == (48, 1, 192)
    # one clip per process is enough under DDP (negatives are gathered); fewer processes than clips is not
    assert resolve_schedule(load_train_config(), 3, world=2).batch_size == 1
    with pytest.raises(FsclapError, match="one per process"):
        resolve_schedule(load_train_config(), 3, world=4)
    with pytest.raises(FsclapError, match="need at least 2"):
        resolve_schedule(load_train_config(), 1, world=1)


@pytest.mark.parametrize("how", [{"overrides": ["preset=paper"]}, {"file": "paper"}])
def test_paper_preset_is_exactly_the_papers_settings(how):
    cfg = load_train_config(how.get("file"), how.get("overrides"))
    assert cfg.preset == "paper"
    assert {k: getattr(cfg, k) for k in PAPER_SETTINGS} == {
        "batch_size": 96,
        "grad_accum": 2,
        "epochs": 10,
        "warmup_epochs": 1.0,
        "lr_backbone": 4e-5,
        "lr_fusion": 1e-4,
        "weight_decay": 0.01,
        "min_lr_ratio": 0.0,
        "recaption": 0.0,
    }
    assert (
        load_train_config(None, ["preset=paper", "recaption=0.5"]).recaption == 0.5
    )  # explicit values win
    for n in (300, 100_000):
        s = resolve_schedule(cfg, n)
        assert (s.batch_size, s.grad_accum, s.epochs, s.derived, s.target_steps) == (
            96,
            2,
            10,
            (),
            None,
        )
        assert s.warmup_steps == s.steps_per_epoch  # one warm-up epoch
    assert (
        resolve_schedule(cfg, 300).total_steps == 20
    )  # what made small corpora fail: too few steps
    # explicit values still win over the preset
    assert load_train_config("paper", ["batch_size=32"]).batch_size == 32


def test_auto_is_the_default_and_named_configs_need_a_known_name(tmp_path):
    cfg = load_train_config()
    assert (cfg.preset, cfg.batch_size, cfg.grad_accum, cfg.epochs, cfg.warmup_epochs) == (
        "auto",
        None,
        None,
        None,
        None,
    )
    assert load_train_config("auto").preset == "auto"
    with pytest.raises(FsclapError, match="training config not found"):
        load_train_config("papr")
    with pytest.raises(FsclapError, match="preset"):
        load_train_config(None, ["preset=fast"])
    # a file named like a preset is read as a file
    (tmp_path / "paper").write_text("epochs: 3\n")
    assert load_train_config(tmp_path / "paper").preset == "auto"


def test_schedule_round_trips_through_json():
    s = resolve_schedule(load_train_config(), 312)
    assert Schedule.from_json(s.to_json()) == s
    assert s.describe().startswith(
        "312 training clips -> batch 16 x 1 (effective 16), 22 epochs, 19 steps/epoch, 418 optimizer steps"
    )
    assert "(target 400)" in s.describe() and "from the corpus size: batch_size" in s.describe()

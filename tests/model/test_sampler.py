"""Hard-negative batches: groups differ from their anchor in exactly one attribute; every clip once per
epoch; seeded; resumable; random batches when attributes are missing; training runs with it."""

import itertools

import pandas as pd
import pytest

from fsclap.errors import FsclapError
from fsclap.manifest import ClipManifest
from model.data import EpochSampler, training_sampler
from model.sampler import OneAttributeSampler, differing_attributes
from model.train_config import load_train_config

from .conftest import STYLES

LEVELS = {
    "gender": ["female", "male"],
    "pitch": ["low", "normal", "high"],
    "speed": ["slow", "normal", "fast"],
    "energy": ["low", "normal", "high"],
}


def grid(repeat: int = 2) -> list[dict]:
    combos = [dict(zip(LEVELS, v)) for v in itertools.product(*LEVELS.values())]
    return [dict(c) for c in combos for _ in range(repeat)]


def test_every_partner_differs_from_its_anchor_in_exactly_one_attribute():
    attrs = grid()
    sampler = OneAttributeSampler(attrs, seed=0, group_size=4)
    groups = sampler.groups()
    assert sorted(i for g in groups for i in g) == list(range(len(attrs)))  # each clip once
    full = [g for g in groups if len(g) == 4]
    assert len(full) * 4 >= 0.7 * len(attrs)  # a dense grid fills most groups (greedy: 78 % here)
    for g in groups:
        changed = [differing_attributes(attrs[g[0]], attrs[p]) for p in g[1:]]
        assert all(len(c) == 1 for c in changed), changed
        assert len({c[0] for c in changed}) == len(
            changed
        )  # each partner contrasts another attribute
    # the loader batches consecutive indices: groups come whole, one after the other
    assert sampler.order() == [i for g in groups for i in g]


def test_seeded_per_epoch_and_skips_for_resume():
    attrs = grid()
    a, b = OneAttributeSampler(attrs, seed=3), OneAttributeSampler(attrs, seed=3)
    assert a.order() == b.order()
    b.set_epoch(1)
    assert a.order() != b.order()
    b.set_epoch(0, skip=10)
    assert list(b) == a.order()[10:] and len(b) == len(attrs) - 10


def test_unknown_levels_are_not_contrasted_and_no_attributes_means_random_groups():
    attrs = [
        {"gender": "female", "pitch": "unknown"},
        {"gender": "female", "pitch": "high"},
        {"gender": "male", "pitch": "unknown"},
    ]
    for seed in range(5):
        groups = OneAttributeSampler(attrs, seed=seed).groups()
        for g in groups:
            for p in g[1:]:
                assert differing_attributes(attrs[g[0]], attrs[p]) == [
                    "gender"
                ]  # never via an unknown pitch
    plain = OneAttributeSampler([{}] * 10, seed=0)
    assert all(len(g) == 1 for g in plain.groups()) and sorted(plain.order()) == list(range(10))
    with pytest.raises(FsclapError, match="group size"):
        OneAttributeSampler(attrs, seed=0, group_size=0)


def test_shards_for_several_processes_are_disjoint_and_equal():
    attrs = grid(3)
    shards = [OneAttributeSampler(attrs, seed=1, rank=r, world=3).order() for r in range(3)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) >= len(attrs) // 3 - 4
    assert not set(shards[0]) & set(shards[1]) and not set(shards[1]) & set(shards[2])


def test_trainer_uses_the_attribute_sampler_with_augmentation(style_corpus, tmp_path):
    """A tiny run with both voice-invariance switches on trains and reads the manifest's attributes."""
    from model.training import Trainer

    frame = pd.read_csv(style_corpus[0]).head(48)
    frame["wav_fp"] = [str(style_corpus[0].parent / p) for p in frame["wav_fp"]]
    for i, column in enumerate(("gender", "pitch", "speed", "energy")):
        frame[column] = [STYLES[k % len(STYLES)][i] for k in range(len(frame))]
    train_csv = tmp_path / "train.csv"
    frame.to_csv(train_csv, index=False)
    tiny = [
        "model.d_model=32",
        "model.embed_dim=32",
        "model.heads=4",
        "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0}",
        "freeze_text=true",
        "workers=0",
        "epochs=1",
        "batch_size=8",
        "grad_accum=1",
        "augment=true",
        "sampler=attribute",
    ]
    cfg = load_train_config(None, tiny)
    trainer = Trainer(
        cfg, ClipManifest.read(train_csv), ClipManifest.read(style_corpus[1]), tmp_path / "run"
    )
    sampler = training_sampler(cfg, trainer.train_set)
    assert isinstance(sampler, OneAttributeSampler) and max(len(g) for g in sampler.groups()) == 4
    assert isinstance(
        training_sampler(load_train_config(None, ["sampler=random"]), trainer.train_set),
        EpochSampler,
    )
    result = trainer.fit()
    assert result.finished and result.steps == 6

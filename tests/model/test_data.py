"""Training captions re-phrased from a clip's levels (``recaption``) and their same-caption keys."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fsclap.audio import write_audio
from fsclap.caption_writer import write_caption
from fsclap.manifest import ClipManifest
from model.backbones.offline import LogMelPreprocessor
from model.data import ClipDataset, Collator, levels_key, training_captioner
from model.train_config import load_train_config

SR = 16000


def _manifest(tmp_path, levels: list[dict], captions: list[str]) -> ClipManifest:
    rows = []
    for i, (attrs, caption) in enumerate(zip(levels, captions)):
        path = tmp_path / f"c{i}.wav"
        write_audio(path, 0.1 * np.sin(np.arange(SR) * 2 * np.pi * 200 / SR).astype(np.float32), SR)
        rows.append({"clip_id": f"c{i}", "audio_path": str(path), "caption": caption, **attrs})
    return ClipManifest.from_frame(pd.DataFrame(rows))


ANGRY = {"gender": "female", "pitch": "high", "speed": "fast", "energy": "high", "emotion": "angry"}
CALM = {"gender": "male", "pitch": "low", "speed": "slow", "energy": "low", "emotion": "neutral"}


def test_levels_key_ignores_unknown_and_needs_a_style_level():
    assert levels_key(ANGRY) == levels_key({**ANGRY, "age": "unknown"})
    assert levels_key(ANGRY) != levels_key(CALM)
    assert levels_key({"gender": "female"}) is None  # gender alone says nothing about style
    assert levels_key({}) is None


def test_recaption_rephrases_levels_each_epoch_deterministically(tmp_path):
    manifest = _manifest(tmp_path, [ANGRY, CALM, {}], ["stored one", "stored two", "stored three"])
    pre = LogMelPreprocessor(n_mels=40, max_seconds=3.0)
    cfg = load_train_config(None, ["recaption=1.0", "seed=3"])
    a = ClipDataset(
        manifest, pre, seed=cfg.seed, captioner=training_captioner(cfg), recaption=cfg.recaption
    )
    b = ClipDataset(
        manifest, pre, seed=cfg.seed, captioner=training_captioner(cfg), recaption=cfg.recaption
    )
    first = [a.caption(i) for i in range(3)]
    assert first == [b.caption(i) for i in range(3)]  # seeded by (seed, epoch, index): resumable
    assert first[2] == ("stored three", None)  # no levels known: the stored caption
    assert first[0][1] == levels_key(ANGRY) and first[0][0] != "stored one"
    phrasings = set()
    for epoch in range(12):
        a.set_epoch(epoch)
        phrasings.add(a.caption(0)[0])
    assert len(phrasings) >= 8  # a new phrasing (almost) every epoch
    # every phrasing is the caption writer's, for those levels
    a.set_epoch(5)
    assert a.caption(0)[0] == write_caption(ANGRY, key=f"c0|{cfg.seed}|5", seed=cfg.seed)


def test_recaption_keeps_the_stored_captions_language(tmp_path):
    manifest = _manifest(
        tmp_path, [ANGRY, ANGRY], ["一位女士愤怒地快速说话。", "An angry woman speaks fast."]
    )
    cfg = load_train_config(None, ["recaption=1.0"])
    ds = ClipDataset(
        manifest,
        LogMelPreprocessor(n_mels=40, max_seconds=3.0),
        captioner=training_captioner(cfg),
        recaption=1.0,
    )
    chinese, english = ds.caption(0)[0], ds.caption(1)[0]
    assert chinese == write_caption(ANGRY, key=f"c0|{cfg.seed}|0", seed=cfg.seed, language="zh")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese)
    assert english.isascii()


def test_recaption_share_and_off(tmp_path):
    levels = [ANGRY, CALM] * 20
    manifest = _manifest(tmp_path, levels, [f"stored {i}" for i in range(40)])
    pre = LogMelPreprocessor(n_mels=40, max_seconds=3.0)
    assert load_train_config(None, []).recaption == 1.0  # on by default (docs/model.md)
    off = load_train_config(None, ["recaption=0"])
    assert training_captioner(off) is None
    plain = ClipDataset(manifest, pre, captioner=training_captioner(off), recaption=off.recaption)
    assert [plain.caption(i) for i in range(40)] == [(f"stored {i}", None) for i in range(40)]
    half = load_train_config(None, ["recaption=0.5"])
    ds = ClipDataset(manifest, pre, captioner=training_captioner(half), recaption=half.recaption)
    stored = sum(ds.caption(i)[0] == f"stored {i}" for i in range(40))
    assert 8 <= stored <= 32  # about half keep their stored caption
    assert all(
        ds.caption(i)[1] == levels_key(levels[i]) for i in range(40)
    )  # keyed by levels either way


def test_collated_keys_make_same_level_clips_positives(tmp_path):
    """Two clips with the same levels but different phrasings share a caption key, so the loss does not push
    them apart; clips without levels keep the normalised caption as key."""
    manifest = _manifest(
        tmp_path, [ANGRY, ANGRY, {}], ["an angry woman", "a furious lady", "Some Caption."]
    )
    pre = LogMelPreprocessor(n_mels=40, max_seconds=3.0)
    cfg = load_train_config(None, ["recaption=1.0"])
    ds = ClipDataset(manifest, pre, captioner=training_captioner(cfg), recaption=cfg.recaption)

    def text_pre(captions):
        return {"n": len(captions)}

    batch = Collator(ds, text_pre)([ds[i] for i in range(3)])
    assert batch.caption_keys[0] == batch.caption_keys[1] == levels_key(ANGRY)
    assert batch.caption_keys[2] == "some caption"

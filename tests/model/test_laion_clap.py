"""LAION-CLAP backbone: loaded through the real loader from tiny random checkpoints in both layouts
(transformers folder, original ``630k-audioset-best.pt`` converted on load)."""

import numpy as np
import pytest
import torch

from fsclap.config import load_settings
from fsclap.errors import FsclapError, MissingModelError
from fsclap.testing.tiny_models import write_tiny_clap_folder, write_tiny_clap_original
from model.backbones.laion_clap import load_clap, rename_original_state_dict
from model.factory import create_model, load_checkpoint, save_checkpoint
from model.model_config import load_model_config

SMALL_LAION = {"d_model": 32, "embed_dim": 16, "heads": 4, "dropout": 0.0}
CAPTIONS = [
    "a young woman speaking fast and angrily",
    "an old man, slow and sad",
    "quiet",
    "a happy girl laughing",
]


@pytest.fixture(scope="module")
def clap_folder(tmp_path_factory):
    return write_tiny_clap_folder(tmp_path_factory.mktemp("clap_hf"))


@pytest.fixture(scope="module")
def clap_original(tmp_path_factory):
    return write_tiny_clap_original(tmp_path_factory.mktemp("clap_orig"))


@pytest.fixture(scope="module")
def laion_model(clap_folder):
    settings = load_settings(overrides={"model_paths": {"laion_clap": str(clap_folder)}})
    return create_model(load_model_config("fsclap-laion", SMALL_LAION), settings, seed=0).eval()


def _waves(n, seed=0):
    """n tones of 0.5, 1.0, 1.5 ... s at 48 kHz (+ a little noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = np.arange(24000 * (i + 1)) / 48000
        out.append(
            (
                0.2 * np.sin(2 * np.pi * (120 + 40 * i) * t) + 0.01 * rng.standard_normal(t.size)
            ).astype(np.float32)
        )
    return out


def test_key_mapping_matches_transformers_conversion():
    """Names as in LAION's checkpoint -> ClapModel names, per transformers' convert_clap_original_pytorch_to_hf.py."""
    w = torch.arange(12.0).view(6, 2)
    sd = rename_original_state_dict(
        {
            "module.audio_branch.layers.0.blocks.1.attn.proj.weight": w,
            "module.audio_branch.layers.2.blocks.0.norm1.bias": w,
            "module.audio_branch.layers.1.blocks.0.mlp.fc2.weight": w,
            "module.audio_branch.bn0.running_mean": w,
            "module.audio_branch.layers.0.blocks.0.attn.qkv.weight": w,
            "module.text_branch.encoder.layer.3.attention.self.query.weight": w,
            "module.text_projection.2.bias": w,
            "module.audio_projection.0.weight": w,
        }
    )
    assert set(sd) == {
        "audio_model.audio_encoder.layers.0.blocks.1.attention.output.dense.weight",
        "audio_model.audio_encoder.layers.2.blocks.0.layernorm_before.bias",
        "audio_model.audio_encoder.layers.1.blocks.0.output.dense.weight",
        "audio_model.audio_encoder.batch_norm.running_mean",
        "audio_model.audio_encoder.layers.0.blocks.0.attention.self.query.weight",
        "audio_model.audio_encoder.layers.0.blocks.0.attention.self.key.weight",
        "audio_model.audio_encoder.layers.0.blocks.0.attention.self.value.weight",
        "text_model.encoder.layer.3.attention.self.query.weight",
        "text_projection.linear2.bias",
        "audio_projection.linear1.weight",
    }
    assert torch.equal(
        sd["audio_model.audio_encoder.layers.0.blocks.0.attention.self.key.weight"], w[2:4]
    )


def test_original_checkpoint_converts_to_the_same_model(clap_original):
    path, source = clap_original
    model, tokenizer, extractor = load_clap(path)
    ours, theirs = model.state_dict(), source.state_dict()
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    assert extractor.sampling_rate == 48000 and extractor.truncation == "rand_trunc"
    ids = tokenizer(CAPTIONS[:2], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        assert torch.allclose(
            model.get_text_features(**ids).pooler_output,
            source.get_text_features(**ids).pooler_output,
            atol=1e-6,
        )
    # the folder form works too
    model2, _, _ = load_clap(path.parent)
    assert torch.equal(model2.state_dict()["logit_scale_a"], theirs["logit_scale_a"])


def test_missing_files_name_what_is_missing(tmp_path, clap_original):
    with pytest.raises(MissingModelError, match="630k-audioset-best.pt"):
        load_clap(tmp_path)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "630k-audioset-best.pt").write_bytes(clap_original[0].read_bytes())
    with pytest.raises(MissingModelError, match="roberta-base"):
        load_clap(lonely / "630k-audioset-best.pt")
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    with pytest.raises(MissingModelError, match="model.safetensors"):
        load_clap(hf)
    bad = tmp_path / "bad" / "630k-audioset-best.pt"
    bad.parent.mkdir()
    torch.save({"state_dict": {"module.something.weight": torch.zeros(2)}}, bad)
    (bad.parent / "roberta-base").mkdir()
    (bad.parent / "roberta-base" / "vocab.json").write_text("{}")
    with pytest.raises(FsclapError):
        load_clap(bad)
    with pytest.raises(MissingModelError, match="laion_clap|630k"):
        settings = load_settings(
            overrides={"model_paths": {"laion_clap": str(tmp_path / "nowhere")}}
        )
        create_model(load_model_config("fsclap-laion", SMALL_LAION), settings)


def test_laion_backbone_tokens_and_invariance(laion_model):
    m = laion_model
    waves = _waves(3)
    feats = m.audio_features(waves)
    assert feats.tokens.shape == (3, 64, 32) and feats.mask.all()  # 2 x 32 HTSAT token grid
    singles = [m.audio_features([w]) for w in waves]  # HTSAT processes every clip on its own
    assert torch.allclose(torch.cat([s.tokens for s in singles]), feats.tokens, atol=1e-5)
    a = m.encode_audio(feats)
    assert torch.allclose(torch.cat([m.encode_audio(s) for s in singles]), a, atol=1e-5)
    assert torch.allclose(m.encode_audio(feats.select([2, 1, 0])), a.flip(0), atol=1e-5)
    t = m.encode_text(CAPTIONS)
    assert torch.allclose(torch.cat([m.encode_text([c]) for c in CAPTIONS]), t, atol=1e-5)
    texts = m.text_features(CAPTIONS[:3])
    pair = m.pair_scores(feats, texts)
    assert torch.allclose(
        torch.cat([m.pair_scores(s, [c]) for s, c in zip(singles, CAPTIONS)]), pair, atol=1e-5
    )
    assert torch.allclose(m.pair_scores(waves[:1], CAPTIONS[:1]), pair[:1], atol=1e-5)


def test_batchnorm_stays_frozen_in_training(laion_model):
    m = laion_model
    m.train()
    try:
        assert not m.backbone.clap.audio_model.audio_encoder.batch_norm.training
    finally:
        m.eval()


def test_checkpoint_is_self_contained(laion_model, tmp_path):
    folder = save_checkpoint(laion_model, tmp_path / "ckpt")
    loaded = load_checkpoint(
        folder, "cpu"
    )  # no model_paths needed: backbone/ holds config + tokenizer
    waves = _waves(2, seed=3)
    assert torch.allclose(loaded.encode_audio(waves), laion_model.encode_audio(waves), atol=1e-6)
    assert torch.allclose(
        loaded.encode_text(CAPTIONS), laion_model.encode_text(CAPTIONS), atol=1e-6
    )


def test_native_pooling_baseline(clap_folder):
    settings = load_settings(overrides={"model_paths": {"laion_clap": str(clap_folder)}})
    m = create_model(load_model_config("clap-laion-native", SMALL_LAION), settings, seed=0).eval()
    t = m.encode_text(CAPTIONS[:2])
    with torch.no_grad():
        ids = m.backbone.tokenizer(CAPTIONS[:2], padding=True, return_tensors="pt")
        expected = m.backbone.clap.get_text_features(**ids).pooler_output
    assert torch.allclose(t, expected, atol=1e-5)


def test_train_laion_backbone_frozen_with_cached_features(clap_original, tmp_path):
    """`fsclap train --set backbone=laion-clap` on the converted original checkpoint, both encoders frozen
    (their features cached once), one corpus manifest with a split column given as --train and --val."""
    import pandas as pd

    from fsclap.audio import write_audio
    from fsclap.cli import main as cli

    rows = []
    for i, wave in enumerate(_waves(6, seed=4) * 2):
        write_audio(tmp_path / f"c{i}.wav", wave, 48000)
        rows.append(
            {
                "audio_path": f"c{i}.wav",
                "caption": CAPTIONS[i % 4],
                "split": "val" if i % 4 == 3 else "train",
            }
        )
    manifest = tmp_path / "corpus.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    run = tmp_path / "run"
    args = [
        "--set",
        f"model_paths.laion_clap={clap_original[0]}",
        "train",
        "--train",
        str(manifest),
        "--val",
        str(manifest),
        "--out",
        str(run),
    ]
    sets = [
        "backbone=laion-clap",
        "epochs=1",
        "batch_size=4",
        "grad_accum=1",
        "workers=0",
        "freeze_text=true",
        "freeze_audio=true",
        "model.d_model=32",
        "model.embed_dim=16",
        "model.heads=4",
        "val_rerank_k=2",
    ]
    assert cli(args + [f"--set={s}" for s in sets]) == 0
    info = (run / "checkpoints" / "best" / "info.json").read_text()
    assert '"n": 3' in info
    model = load_checkpoint(run, "cpu")
    assert model.config.backbone == "laion-clap" and model.encode_text(["quiet"]).shape == (1, 16)

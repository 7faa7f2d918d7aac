"""The FS-CLAP model: API shapes, and leak-freedom: an item's bi embedding and a pair's score depend
only on that item / pair, never on the batch's other items, their order or the batch size."""

import numpy as np
import pytest
import torch

from model.backbones.base import TokenFeatures
from model.factory import create_model
from model.model_config import load_model_config

from .conftest import SMALL_OFFLINE, STYLES, render_style, style_caption

CAPTIONS = [style_caption(*s) for s in STYLES[:6]] + ["a sad old man whispering very slowly", "Hi!"]


@pytest.fixture(scope="module")
def waves():
    rng = np.random.default_rng(0)
    # lengths from 0.4 s to 3.9 s: lots of padding in a batch, and one clip longer than the 3 s window
    return [
        render_style(*STYLES[i % 16], seconds=0.4 + 0.5 * i, sr=16000, rng=rng) for i in range(8)
    ]


def test_encode_shapes_and_norms(small_offline_model, waves):
    m = small_offline_model
    a = m.encode_audio(waves[:3])
    t = m.encode_text(CAPTIONS[:5])
    assert a.shape == (3, 64) and t.shape == (5, 64)
    assert torch.allclose(a.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(t.norm(dim=-1), torch.ones(5), atol=1e-5)
    tokens = m.audio_features(waves[:3])
    assert tokens.tokens.shape[0] == 3 and tokens.mask.dtype == torch.bool
    # 12.5 tokens per second (10 ms frames, 8x subsampling): 0.4 s -> 38 frames -> 5 tokens, 0.9 s -> 11, 1.4 s -> 18
    assert tokens.mask.sum(1).tolist()[:3] == [5, 11, 18]


@pytest.mark.parametrize("modality", ["audio", "text"])
def test_bi_embeddings_invariant_to_batch(small_offline_model, waves, modality):
    m = small_offline_model
    items = waves if modality == "audio" else CAPTIONS
    encode = m.encode_audio if modality == "audio" else m.encode_text
    full = encode(items)
    perm = [5, 2, 7, 0, 3, 6, 1, 4]
    permuted = encode([items[i] for i in perm])
    assert torch.allclose(permuted, full[perm], atol=1e-5)
    singles = torch.cat([encode([x]) for x in items])
    assert torch.allclose(singles, full, atol=1e-5)
    pairs = torch.cat([encode(items[i : i + 3]) for i in range(0, 8, 3)])
    assert torch.allclose(pairs, full, atol=1e-5)


def test_pair_scores_invariant_to_batch(small_offline_model, waves):
    m = small_offline_model
    a_idx = [0, 1, 2, 3, 4, 5, 6, 7, 7, 0]
    t_idx = [0, 3, 1, 7, 2, 5, 6, 4, 0, 7]
    full = m.pair_scores([waves[i] for i in a_idx], [CAPTIONS[j] for j in t_idx])
    singles = torch.cat([m.pair_scores([waves[i]], [CAPTIONS[j]]) for i, j in zip(a_idx, t_idx)])
    assert torch.allclose(full, singles, atol=1e-5)
    perm = list(reversed(range(len(a_idx))))
    permuted = m.pair_scores([waves[a_idx[p]] for p in perm], [CAPTIONS[t_idx[p]] for p in perm])
    assert torch.allclose(permuted, full[perm], atol=1e-5)
    # precomputed token features (what re-ranking uses) give the same scores, in any chunking
    a_feats, t_feats = m.audio_features(waves), m.text_features(CAPTIONS)
    by_index = m.pair_cosine(a_feats, t_feats, torch.tensor(a_idx), torch.tensor(t_idx), chunk=3)
    assert torch.allclose(by_index, full, atol=1e-5)
    listed = m.pair_scores(
        [a_feats.unbind()[i] for i in a_idx], [t_feats.unbind()[j] for j in t_idx]
    )
    assert torch.allclose(listed, full, atol=1e-5)


def test_pair_score_depends_on_partner_not_on_ground_truth(small_offline_model, waves):
    """Pair scores are a real joint function: the same audio scores differently with different captions."""
    m = small_offline_model
    s = m.pair_scores([waves[0]] * 3, CAPTIONS[:3])
    assert s.unique().numel() == 3
    assert m.has_pair_scoring


def test_training_forward_and_pair_logits(small_offline_model, waves):
    m = small_offline_model
    a = m.backbone.audio_preprocessor
    audio = a.collate([a(w) for w in waves[:6]])
    text = m.backbone.text_preprocessor(CAPTIONS[:6])
    out = m(audio, text, None, pair_mode="hard", pair_k=3)
    assert out["logits"].shape == (6, 6)
    pair = out["pair"]
    assert pair.a2t.shape == (6, 4) and pair.t2a.shape == (6, 4)
    assert pair.a2t_pos[:, 0].all() and not pair.a2t_pos[:, 1:].any()
    # the hard negatives are the highest bi-scored negatives of each row
    bi = out["logits"].detach().clone()
    bi.fill_diagonal_(-float("inf"))
    idx = torch.arange(6)
    assert torch.allclose(
        pair.a2t[:, 0] / m.pair_logit_scale(),
        m.pair_cosine(
            m.project_audio(m.backbone.encode_audio(audio)),
            m.project_text(m.backbone.encode_text(text)),
            idx,
            idx,
        ),
        atol=1e-4,
    )
    all_pairs = m(audio, text, None, pair_mode="all")["pair"]
    assert all_pairs.a2t.shape == (6, 6) and torch.allclose(all_pairs.t2a, all_pairs.a2t.t())


def test_ablation_rows_build():
    """Each Table 3 row is one config; without fusion the pair score is the bi score."""
    for fusion, separation in [(False, False), (True, False), (False, True)]:
        cfg = load_model_config(
            "fsclap-offline", {**SMALL_OFFLINE, "fusion": fusion, "separation": separation}
        )
        m = create_model(cfg, seed=0).eval()
        assert (m.fusion is not None) == fusion
        assert m.separation.separation == separation
        if not fusion:
            rng = np.random.default_rng(1)
            w = [render_style(*STYLES[0], seconds=1.0, sr=16000, rng=rng)]
            bi = (m.encode_audio(w) * m.encode_text(CAPTIONS[:1])).sum(-1)
            assert torch.allclose(m.pair_scores(w, CAPTIONS[:1]), bi, atol=1e-6)


def test_offline_audio_encoder_masks_padding():
    from model.backbones.offline import LogMelEncoder

    enc = LogMelEncoder(n_mels=8, dim=16, blocks=3, subsample=2).eval()
    mel = torch.randn(2, 50, 8)
    lengths = torch.tensor([50, 23])
    out = enc(mel, lengths)
    assert out.mask.sum(1).tolist() == [13, 6]
    alone = enc(mel[1:, :23], lengths[1:])
    assert torch.allclose(alone.tokens[0, :6], out.tokens[1, :6], atol=1e-5)
    assert torch.all(out.tokens[1, 6:] == 0)


def test_token_features_helpers():
    tf = TokenFeatures(
        torch.randn(3, 5, 4),
        torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool),
    )
    items = tf.unbind()
    assert [it.tokens.shape[1] for it in items] == [3, 5, 1]
    back = TokenFeatures.pad_cat(items)
    assert torch.equal(back.mask, tf.mask)
    assert torch.equal(back.tokens[back.mask], tf.tokens[tf.mask])
    assert tf.select([2]).trimmed().tokens.shape == (1, 1, 4)


def test_embed_manifest_is_deterministic_and_skips_bad_rows(
    small_offline_model, style_corpus, tmp_path
):
    import pandas as pd

    from fsclap.manifest import ClipManifest

    frame = pd.read_csv(style_corpus[1]).head(10)
    frame["wav_fp"] = [str(style_corpus[1].parent / p) for p in frame["wav_fp"]]
    frame.loc[3, "wav_fp"] = str(tmp_path / "missing.wav")
    frame.loc[5, "style_prompt"] = ""
    manifest = ClipManifest.from_frame(frame)
    m = small_offline_model
    a = m.embed_manifest(manifest, batch_size=3, show_progress=False)
    b = m.embed_manifest(manifest, batch_size=8, workers=1, keep_tokens=True, show_progress=False)
    assert (
        a.clip_ids == b.clip_ids == [c for i, c in enumerate(frame["clip_id"]) if i not in (3, 5)]
    )
    assert torch.allclose(a.audio, b.audio, atol=1e-5) and torch.allclose(a.text, b.text, atol=1e-5)
    assert sorted(f[0] for f in a.failures) == sorted(frame["clip_id"][[3, 5]])
    assert len(b.audio_tokens) == 8 and b.audio_tokens[0].tokens.dtype == torch.float16
    # the embeddings equal encode_audio on the centre crop of each clip
    from fsclap.audio import load_audio
    from model.data import crop_bounds

    wave, _ = load_audio(frame["wav_fp"][0], sample_rate=m.sample_rate)
    lo, hi = crop_bounds(
        len(wave), int(m.backbone.audio_preprocessor.max_seconds * m.sample_rate), None
    )
    assert torch.allclose(m.encode_audio([wave[lo:hi]])[0], a.audio[0], atol=1e-5)

"""Fusion / Separation: shapes, padding masks, no attention across the batch."""

import torch

from model.fusion_separation import AUDIO, TEXT, AttentionPool, Fusion, Separation, mean_pool


def _batch(b=3, n=7, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g)
    lengths = torch.tensor([7, 4, 1])[:b]
    valid = torch.arange(n)[None, :] < lengths[:, None]
    return x, valid


def test_fusion_shapes_and_zeroed_padding():
    fusion = Fusion(16, heads=4, layers=2, dropout=0.0).eval()
    x, valid = _batch()
    out = fusion(x, valid, torch.zeros(7, dtype=torch.long))
    assert out.shape == x.shape
    assert torch.all(out[~valid] == 0)


def test_fusion_ignores_padding_content_and_other_items():
    fusion = Fusion(16, heads=4, layers=2, dropout=0.0).eval()
    x, valid = _batch()
    ids = torch.zeros(7, dtype=torch.long)
    out = fusion(x, valid, ids)
    noisy = x.clone()
    noisy[~valid] = 1e3  # garbage in padded positions must not reach real tokens
    assert torch.allclose(fusion(noisy, valid, ids)[valid], out[valid], atol=1e-5)
    alone = fusion(x[1:2, :4], valid[1:2, :4], ids[:4])  # item 1 on its own, unpadded
    assert torch.allclose(alone[0], out[1, :4], atol=1e-5)
    changed = x.clone()
    changed[0] += (
        5.0  # changing item 0 leaves item 1 alone (batch-first attention, no cross-batch mixing)
    )
    assert torch.allclose(fusion(changed, valid, ids)[1], out[1], atol=1e-6)


def test_modality_embedding_changes_output():
    fusion = Fusion(16, heads=4, layers=1, dropout=0.0).eval()
    x, valid = _batch()
    a = fusion(x, valid, torch.full((7,), AUDIO))
    t = fusion(x, valid, torch.full((7,), TEXT))
    assert not torch.allclose(a[valid], t[valid])


def test_pools_respect_masks():
    x, valid = _batch()
    pooled = mean_pool(x, valid)
    assert torch.allclose(pooled[1], x[1, :4].mean(0))
    assert torch.allclose(pooled[2], x[2, 0])
    pool = AttentionPool(16)
    out = pool(x, valid)
    noisy = x.clone()
    noisy[~valid] = 50.0
    assert torch.allclose(pool(noisy, valid), out, atol=1e-6)
    assert torch.allclose(out[2], x[2, 0], atol=1e-6)  # one real token: weight 1


def test_separation_modes():
    x, valid = _batch()
    sep = Separation(16, separation=True).eval()
    assert sep(x, valid, AUDIO).shape == (3, 16)
    assert not torch.allclose(
        sep(x, valid, AUDIO), sep(x, valid, TEXT)
    )  # parallel, per-modality FFNs
    plain = Separation(16, separation=False, pooling="mean").eval()
    assert plain.pooling == "mean" and not hasattr(plain, "ffn")

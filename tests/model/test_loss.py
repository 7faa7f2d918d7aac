"""The loss against a direct float64 reading of eq. 1-3 of the paper."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.loss import (
    ContrastiveObjective,
    PairLogits,
    feature_regulariser,
    hn_row_loss,
    same_caption_mask,
    symmetric_contrastive_loss,
)


def reference_hn(
    sim: np.ndarray, tau: float, gamma: float, exclude: np.ndarray | None = None
) -> float:
    """Eq. 1-2 written out with loops in float64; result divided by 2B (our documented normalisation).

    ``exclude[i, j]`` drops j from row i's negatives and from eq. 2's sum (n_i counts what is left).
    """
    b = sim.shape[0]
    exclude = np.zeros((b, b), bool) if exclude is None else exclude

    def direction(s):
        total = 0.0
        for i in range(b):
            keep = [k for k in range(b) if k == i or not exclude[i, k]]
            denom_alpha = sum(math.exp(gamma * s[i, k] / tau) for k in keep)
            neg = 0.0
            for j in keep:
                if j == i:
                    continue
                alpha = len(keep) * math.exp(gamma * s[i, j] / tau) / denom_alpha
                neg += alpha * math.exp(s[i, j] / tau)
            pos = math.exp(s[i, i] / tau)
            total += math.log(pos / (pos + neg))
        return -total

    return (direction(sim) + direction(sim.T)) / (2 * b)


def reference_reg(h: np.ndarray) -> float:
    return float(np.mean([np.mean(np.abs(v)) / np.linalg.norm(v) for v in h]))


def _embeddings(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    p = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1)
    q = F.normalize(p + 0.7 * torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1)
    return p, q


@pytest.mark.parametrize("tau,gamma", [(0.07, 0.15), (0.5, 0.15), (0.07, 0.0), (0.2, 1.0)])
def test_hn_loss_matches_eq_1_2(tau, gamma):
    p, q = _embeddings(12, 16, seed=1)
    sim = (p @ q.T).numpy()
    a2t, t2a = symmetric_contrastive_loss(torch.from_numpy(sim / tau), None, gamma)
    assert float(0.5 * (a2t + t2a)) == pytest.approx(reference_hn(sim, tau, gamma), rel=1e-5)


def test_hn_loss_with_excluded_duplicates_matches_reference():
    p, q = _embeddings(10, 8, seed=2)
    sim = (p @ q.T).numpy()
    keys = ["a", "b", "a", "c", "b", "d", "e", "a", "f", "g"]
    exclude = same_caption_mask(keys)
    a2t, t2a = symmetric_contrastive_loss(torch.from_numpy(sim / 0.1), exclude, 0.15)
    assert float(0.5 * (a2t + t2a)) == pytest.approx(
        reference_hn(sim, 0.1, 0.15, exclude.numpy()), rel=1e-5
    )


def test_gamma_zero_is_symmetric_infonce():
    p, q = _embeddings(9, 8, seed=3)
    logits = (p @ q.T).float() / 0.07
    labels = torch.arange(9)
    expected = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    a2t, t2a = symmetric_contrastive_loss(logits, None, 0.0)
    assert float(0.5 * (a2t + t2a)) == pytest.approx(float(expected), rel=1e-5)


def test_hn_weights_emphasise_hard_negatives():
    """With gamma > 0 a hard negative (high similarity) costs more than under InfoNCE."""
    logits = torch.tensor(
        [[5.0, 4.5, -3.0, -3.0], [0.0, 5.0, -3.0, -3.0], [0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 5.0]]
    )
    eye = torch.eye(4, dtype=torch.bool)
    hn = hn_row_loss(logits, eye, ~eye, 0.15)
    ce = hn_row_loss(logits, eye, ~eye, 0.0)
    assert hn[0] > ce[0]


def test_loss_is_stable_for_large_logits():
    """A temperature of 1e-3 gives logits of ~1000: the naive exp overflows, logsumexp does not."""
    p, q = _embeddings(8, 8, seed=4)
    logits = ((p @ q.T) / 1e-3).float()
    a2t, t2a = symmetric_contrastive_loss(logits, None, 0.15)
    assert torch.isfinite(a2t) and torch.isfinite(t2a)
    logits.requires_grad_(True)
    a2t, t2a = symmetric_contrastive_loss(logits, None, 0.15)
    (a2t + t2a).backward()
    assert torch.isfinite(logits.grad).all()


def test_regulariser_matches_eq_3():
    h = torch.randn(6, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert float(feature_regulariser(h)) == pytest.approx(reference_reg(h.numpy()), rel=1e-6)
    # a dense vector scores 1/sqrt(D), a one-hot 1/D: the term favours sparse, peaky features
    assert float(feature_regulariser(torch.ones(1, 16))) == pytest.approx(0.25)
    assert float(feature_regulariser(torch.eye(16)[:1])) == pytest.approx(1 / 16)


def test_objective_total_combines_eq_1_to_3():
    p, q = _embeddings(8, 16, seed=6)
    h_a, h_t = torch.randn(8, 24, dtype=torch.float64), torch.randn(8, 24, dtype=torch.float64)
    tau = 0.07
    obj = ContrastiveObjective(hn_loss=True, gamma=0.15, reg_weight=1.0)
    out = obj((p @ q.T).float() / tau, None, h_a, h_t)
    expected = (
        reference_hn((p @ q.T).numpy(), tau, 0.15)
        + reference_reg(h_a.numpy())
        + reference_reg(h_t.numpy())
    )
    assert float(out.total) == pytest.approx(expected, rel=1e-5)
    baseline = ContrastiveObjective(hn_loss=False)(((p @ q.T) / tau).float(), None, h_a, h_t)
    assert "loss_reg" not in baseline.parts
    assert float(baseline.total) == pytest.approx(
        reference_hn((p @ q.T).numpy(), tau, 0.0), rel=1e-5
    )


def test_pair_logits_all_pairs_equals_square_loss():
    p, q = _embeddings(7, 8, seed=7)
    logits = ((p @ q.T) / 0.1).float()
    eye = torch.eye(7, dtype=torch.bool)
    pair = PairLogits(logits, eye, ~eye, logits.T, eye, ~eye)
    a2t, t2a = symmetric_contrastive_loss(logits, None, 0.15)
    assert float(pair.loss(0.15)) == pytest.approx(float(0.5 * (a2t + t2a)), rel=1e-6)

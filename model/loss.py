"""Contrastive losses of FS-CLAP (paper §3.2) and the plain CLAP baseline.

Conventions (documented once, used everywhere):

* ``logits[i, j] = <p_i, q_j> / tau`` with L2-normalised embeddings; rows are queries.
* Eq. 1 sums over the batch; we average over rows and over the two directions
  (``L_HN = (mean_i a2t_i + mean_i t2a_i) / 2``), i.e. eq. 1 divided by ``2B``. This is the usual
  CLIP normalisation and keeps the learning rate independent of the batch size.
* Items whose normalised captions are identical are not negatives of each other (TextrolSpeech-style
  corpora reuse captions): ``exclude[i, j] = True`` removes column ``j`` from row ``i``. With no
  exclusions the weights below are exactly eq. 2 (``n_i = B``, the sum over ``k`` runs over the batch).
* HN weights (eq. 2): ``alpha_ij = n_i * exp(gamma * l_ij) / sum_{k in V_i} exp(gamma * l_ik)`` where
  ``V_i`` = the positive plus the row's negatives and ``n_i = |V_i|``. They keep their gradient, as in
  the formula. ``gamma = 0`` gives ``alpha = 1``: plain symmetric InfoNCE (the baseline).
* Everything is computed in log space with ``logsumexp`` so large logits never overflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

HN_GAMMA = 0.15


def hn_row_loss(logits: Tensor, positive: Tensor, negative: Tensor, gamma: float) -> Tensor:
    """Per-row hard-negative-weighted contrastive loss (eq. 1 for one direction).

    ``logits``: (R, C) scaled similarities. ``positive``: (R, C) bool with exactly one True per row.
    ``negative``: (R, C) bool, the row's negatives (never overlapping ``positive``).
    Returns (R,) losses ``-log(e^{l_pos} / (e^{l_pos} + sum_neg alpha * e^{l_neg}))``.
    """
    logits = logits.float()
    neg_inf = torch.finfo(logits.dtype).min
    valid = positive | negative
    pos_logit = (logits * positive).sum(dim=1)
    if gamma == 0.0:
        log_alpha = torch.zeros_like(logits)
    else:
        scaled = (gamma * logits).masked_fill(~valid, neg_inf)
        count = valid.sum(dim=1, keepdim=True).to(logits.dtype)
        log_alpha = torch.log(count) + gamma * logits - torch.logsumexp(scaled, dim=1, keepdim=True)
    weighted = (logits + log_alpha).masked_fill(~negative, neg_inf)
    terms = torch.cat([pos_logit[:, None], weighted], dim=1)
    return torch.logsumexp(terms, dim=1) - pos_logit


def symmetric_contrastive_loss(
    logits: Tensor, exclude: Tensor | None = None, gamma: float = HN_GAMMA
) -> tuple[Tensor, Tensor]:
    """Both directions of eq. 1 over a square (B, B) logits matrix whose diagonal holds the matched pairs.

    Returns ``(a2t, t2a)``, each the mean over rows. ``gamma=0`` is symmetric InfoNCE.
    """
    b = logits.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=logits.device)
    negative = ~eye if exclude is None else ~eye & ~exclude
    a2t = hn_row_loss(logits, eye, negative, gamma).mean()
    t2a = hn_row_loss(logits.t(), eye, negative.t(), gamma).mean()
    return a2t, t2a


def feature_regulariser(features: Tensor, eps: float = 1e-8) -> Tensor:
    """Eq. 3 term for one modality: mean over the batch of ``E[|h|] / ||h||_2`` (per feature vector)."""
    features = features.float()
    return (features.abs().mean(dim=-1) / features.norm(dim=-1).clamp_min(eps)).mean()


def same_caption_mask(caption_keys: list[str], device=None) -> Tensor:
    """(B, B) bool: True where two items share a normalised caption (and are different items)."""
    ids = {}
    return same_code_mask(
        torch.tensor([ids.setdefault(k, len(ids)) for k in caption_keys], device=device)
    )


def same_code_mask(codes: Tensor) -> Tensor:
    """(N, N) bool: True where two different items share a caption code."""
    same = codes[:, None] == codes[None, :]
    return same & ~torch.eye(len(codes), dtype=torch.bool, device=codes.device)


@dataclass
class LossOutput:
    total: Tensor
    parts: dict[str, float]


class ContrastiveObjective(torch.nn.Module):
    """The training objective, switchable per ablation row.

    ``hn_loss=True``: eq. 1-2 (HN weights, ``gamma``) plus ``reg_weight`` x eq. 3 on the pooled,
    pre-projection features of both modalities. ``hn_loss=False``: symmetric InfoNCE, no regulariser
    (the plain CLAP baseline). The pair path (when the model fuses pairs) adds ``pair_weight`` x the same
    contrastive loss over the fused pair scores.
    """

    def __init__(
        self,
        hn_loss: bool = True,
        gamma: float = HN_GAMMA,
        reg_weight: float = 1.0,
        pair_weight: float = 1.0,
    ):
        super().__init__()
        self.hn_loss = hn_loss
        self.gamma = gamma if hn_loss else 0.0
        self.reg_weight = reg_weight if hn_loss else 0.0
        self.pair_weight = pair_weight

    def forward(
        self,
        logits: Tensor,
        exclude: Tensor | None,
        audio_pooled: Tensor | None = None,
        text_pooled: Tensor | None = None,
        pair: PairLogits | None = None,
    ) -> LossOutput:
        a2t, t2a = symmetric_contrastive_loss(logits, exclude, self.gamma)
        bi = 0.5 * (a2t + t2a)
        total = bi
        parts = {
            "loss_bi": float(bi.detach()),
            "loss_a2t": float(a2t.detach()),
            "loss_t2a": float(t2a.detach()),
        }
        if self.reg_weight and audio_pooled is not None and text_pooled is not None:
            reg = feature_regulariser(audio_pooled) + feature_regulariser(text_pooled)
            total = total + self.reg_weight * reg
            parts["loss_reg"] = float(reg.detach())
        if pair is not None and self.pair_weight:
            pair_loss = pair.loss(self.gamma)
            total = total + self.pair_weight * pair_loss
            parts["loss_pair"] = float(pair_loss.detach())
        parts["loss"] = float(total.detach())
        return LossOutput(total, parts)


@dataclass
class PairLogits:
    """Fused pair scores for candidate sets: one block per direction.

    Each block is (R, C) logits with ``positive`` (one True per row) and ``negative`` masks; a
    square all-pairs matrix is expressed as the a2t block and its transpose.
    """

    a2t: Tensor
    a2t_pos: Tensor
    a2t_neg: Tensor
    t2a: Tensor
    t2a_pos: Tensor
    t2a_neg: Tensor

    def loss(self, gamma: float) -> Tensor:
        a2t = hn_row_loss(self.a2t, self.a2t_pos, self.a2t_neg, gamma).mean()
        t2a = hn_row_loss(self.t2a, self.t2a_pos, self.t2a_neg, gamma).mean()
        return 0.5 * (a2t + t2a)


def clamp_logit_scale(log_scale: Tensor, max_scale: float = 100.0) -> Tensor:
    """``exp(log_scale)`` clamped to ``max_scale`` (CLIP's guard against a collapsing temperature)."""
    return log_scale.exp().clamp(max=max_scale)


def init_log_scale(temperature: float) -> float:
    return math.log(1.0 / temperature)

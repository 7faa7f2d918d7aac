"""Fusion module and Separation module (paper §3.1).

Fusion: two residual multi-head self-attention blocks over the concatenated [audio; text] token
sequence, with a learned modality embedding added to every token. Attention is batch-first and takes a
``key_padding_mask``: a token attends only to the real tokens of its own sequence, never to padding and
never to other items of the batch (the authors' ``nn.MultiheadAttention`` without ``batch_first`` mixed
the batch; see the leak-free evaluation protocol of docs/design.md).

Separation: split the fused sequence back into its audio and text parts, refine each with its own
residual FFN, pool each with attention pooling (masked), project, L2-normalise (in ``FSCLAP``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

AUDIO, TEXT = 0, 1


class FusionBlock(nn.Module):
    """Pre-norm residual MHSA + residual FFN (one 'multi-head residual self-attention block')."""

    def __init__(self, dim: int, heads: int, ffn_mult: float = 4.0, dropout: float = 0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.drop1 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, int(dim * ffn_mult)),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(int(dim * ffn_mult), dim),
        )
        self.drop2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        h = self.norm1(x)
        # need_weights=False keeps the fused kernel; key_padding_mask: True = ignore this key
        h, _ = self.attn(h, h, h, key_padding_mask=~valid, need_weights=False)
        x = x + self.drop1(h)
        x = x + self.drop2(self.ffn(self.norm2(x)))
        return x.masked_fill(~valid.unsqueeze(-1), 0.0)


class Fusion(nn.Module):
    """Modality embeddings + ``layers`` FusionBlocks over one (possibly single-modality) sequence."""

    def __init__(
        self, dim: int, heads: int, layers: int = 2, ffn_mult: float = 4.0, dropout: float = 0.1
    ):
        super().__init__()
        self.modality = nn.Embedding(2, dim)
        nn.init.normal_(self.modality.weight, std=0.02)
        self.blocks = nn.ModuleList(
            [FusionBlock(dim, heads, ffn_mult, dropout) for _ in range(layers)]
        )

    def forward(self, x: Tensor, valid: Tensor, modality: Tensor) -> Tensor:
        """``x`` (B, L, D), ``valid`` (B, L) bool, ``modality`` (L,) or (B, L) of AUDIO/TEXT ids."""
        x = x + self.modality(modality)
        for block in self.blocks:
            x = block(x, valid)
        return x


class AttentionPool(nn.Module):
    """Masked attention pooling: a learned scorer gives each real token a weight (softmax over the
    item's own tokens)."""

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        logits = self.score(x).squeeze(-1).float().masked_fill(~valid, float("-inf"))
        weights = torch.softmax(logits, dim=-1).to(x.dtype)
        return torch.einsum("bl,bld->bd", weights, x)


def mean_pool(x: Tensor, valid: Tensor) -> Tensor:
    w = valid.to(x.dtype)
    return (x * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp_min(1.0)


class ResidualFFN(nn.Module):
    def __init__(self, dim: int, ffn_mult: float = 4.0, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, int(dim * ffn_mult)),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(int(dim * ffn_mult), dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.ffn(self.norm(x))


class Separation(nn.Module):
    """Per-modality refinement and pooling of (fused) token sequences.

    ``separation=True``: a residual FFN per modality, then attention pooling per modality (the paper's SM).
    ``separation=False``: no FFN; ``pooling`` ("mean" or "attention") per modality (ablation / baseline).
    Returns the pooled pre-projection feature (what eq. 3 regularises).
    """

    def __init__(
        self,
        dim: int,
        separation: bool = True,
        pooling: str = "mean",
        ffn_mult: float = 4.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.separation = separation
        self.pooling = "attention" if separation else pooling
        if separation:
            self.ffn = nn.ModuleList([ResidualFFN(dim, ffn_mult, dropout) for _ in range(2)])
        if self.pooling == "attention":
            self.pool = nn.ModuleList([AttentionPool(dim) for _ in range(2)])
        self.norm = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])

    def forward(self, x: Tensor, valid: Tensor, modality: int) -> Tensor:
        if self.separation:
            x = self.ffn[modality](x)
        x = self.norm[modality](x)
        if self.pooling == "attention":
            return self.pool[modality](x, valid)
        return mean_pool(x, valid)

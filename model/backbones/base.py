"""The backbone interface: audio and text encoders that return token-level features with masks.

A backbone has two halves:

* picklable *preprocessors* (``audio_preprocessor``, ``text_preprocessor``) that turn one waveform /
  a list of captions into tensors on the CPU. Data-loader workers run them, so decoding and feature
  extraction never hold up the accelerator;
* the ``nn.Module`` encoders (``encode_audio``, ``encode_text``) that map a collated batch to
  :class:`TokenFeatures` ``(tokens (B, N, D), mask (B, N) True = real token)``.

Every item is processed on its own or under a padding mask, so an item's features never depend on the
other items of its batch or on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


@contextmanager
def quiet_transformers():
    """Silence transformers' load reports/warnings for loads whose mismatches are expected."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


@dataclass
class TokenFeatures:
    """Token-level features of a batch: ``tokens`` (B, N, D), ``mask`` (B, N) bool (True = real token).

    ``pooled`` is the backbone's own global embedding when it has one (LAION-CLAP's projected
    audio/text embeddings), used only by the ``pooling="native"`` baseline.
    """

    tokens: Tensor
    mask: Tensor
    pooled: Tensor | None = None

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to(self, device, dtype=None) -> TokenFeatures:
        tokens = self.tokens.to(device=device, dtype=dtype) if dtype else self.tokens.to(device)
        pooled = (
            None
            if self.pooled is None
            else (self.pooled.to(device=device, dtype=dtype) if dtype else self.pooled.to(device))
        )
        return TokenFeatures(tokens, self.mask.to(device), pooled)

    def select(self, index: Tensor | Sequence[int]) -> TokenFeatures:
        index = torch.as_tensor(index, device=self.tokens.device, dtype=torch.long)
        pooled = None if self.pooled is None else self.pooled[index]
        return TokenFeatures(self.tokens[index], self.mask[index], pooled)

    def trimmed(self) -> TokenFeatures:
        """Drop padding columns that no item uses (keeps results identical, saves compute)."""
        n = int(self.mask.sum(dim=1).max().item()) if self.mask.numel() else 0
        return TokenFeatures(self.tokens[:, : max(n, 1)], self.mask[:, : max(n, 1)], self.pooled)

    def unbind(self) -> list[TokenFeatures]:
        """One unpadded item per entry (for caches of frozen-backbone features)."""
        out = []
        for i in range(len(self)):
            n = int(self.mask[i].sum())
            pooled = None if self.pooled is None else self.pooled[i : i + 1]
            out.append(TokenFeatures(self.tokens[i : i + 1, :n], self.mask[i : i + 1, :n], pooled))
        return out

    @staticmethod
    def pad_cat(items: Sequence[TokenFeatures]) -> TokenFeatures:
        """Concatenate along the batch, padding to the longest item with masked zeros."""
        n = max(it.tokens.shape[1] for it in items)
        tokens, masks = [], []
        for it in items:
            pad = n - it.tokens.shape[1]
            tokens.append(nn.functional.pad(it.tokens, (0, 0, 0, pad)))
            masks.append(nn.functional.pad(it.mask, (0, pad), value=False))
        pooled = (
            None
            if any(it.pooled is None for it in items)
            else torch.cat([it.pooled for it in items])
        )
        return TokenFeatures(torch.cat(tokens), torch.cat(masks), pooled)


def pad_stack(arrays: Sequence[Tensor], value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Pad (T_i, ...) tensors along dim 0 to (B, T_max, ...); returns (batch, lengths)."""
    lengths = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
    batch = nn.utils.rnn.pad_sequence(list(arrays), batch_first=True, padding_value=value)
    return batch, lengths


class AudioPreprocessor:
    """Waveform (mono float32 at ``sample_rate``) -> per-item tensors; ``collate`` batches them."""

    sample_rate: int = 16000
    max_seconds: float = 10.0

    def __call__(self, wave: np.ndarray) -> dict[str, Tensor]:
        raise NotImplementedError

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        raise NotImplementedError


class TextPreprocessor:
    """Captions -> a batch of token ids with an attention mask (padded to the longest caption)."""

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: Sequence[str]) -> dict[str, Tensor]:
        enc = self.tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


class Backbone(nn.Module):
    """Audio + text encoders giving token-level features. Subclasses set the attributes below."""

    name: str = ""
    audio_dim: int = 0
    text_dim: int = 0
    pooled_dim: int | None = (
        None  # size of ``TokenFeatures.pooled`` when the backbone has a native embedding
    )
    audio_preprocessor: AudioPreprocessor
    text_preprocessor: TextPreprocessor

    @property
    def sample_rate(self) -> int:
        return self.audio_preprocessor.sample_rate

    def encode_audio(self, batch: dict[str, Tensor]) -> TokenFeatures:
        raise NotImplementedError

    def encode_text(self, batch: dict[str, Tensor]) -> TokenFeatures:
        raise NotImplementedError

    def audio_encoder_module(self) -> nn.Module:
        raise NotImplementedError

    def text_encoder_module(self) -> nn.Module:
        raise NotImplementedError

    def scratch_modules(self) -> list[nn.Module]:
        """Sub-modules trained from scratch (they get their own, higher learning rate)."""
        return []

    def save_assets(self, folder: Path) -> None:
        """Write what is needed to rebuild this backbone (configs, tokenizer) without the original weights."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "audio_dim": self.audio_dim,
            "text_dim": self.text_dim,
            "sample_rate": self.sample_rate,
        }

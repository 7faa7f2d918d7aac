"""FS-CLAP: backbone -> Fusion -> Separation -> projections -> cosine similarity (paper §3.1).

Two scorings, both leak-free (a score depends only on its query and its candidate):

* ``bi``: each modality goes through the fusion transformer *alone* (no partner), then Separation
  and projection give an L2-normalised embedding. Bi embeddings can be indexed; the bi score is their
  cosine. ``encode_audio`` / ``encode_text`` / ``embed_manifest`` return these.
* ``pair``: a (audio, text) pair is concatenated and fused jointly; the cosine of the two separated,
  pooled, projected halves is the pair score. ``pair_scores`` is meant to re-rank a bi shortlist.

Stable API for retrieval and evaluation::

    model = model.factory.load_checkpoint(run_dir_or_file, device)
    a = model.encode_audio([wave, ...])          # (B, E) float32, L2-normalised; waves at model.sample_rate
    t = model.encode_text(["a sad woman ..."])   # (B, E)
    emb = model.embed_manifest(manifest)          # ManifestEmbeddings (audio, text, clip_ids, captions, failures)
    s = model.pair_scores(audio_feats, text_feats)  # (P,) aligned pairs; inputs: waves/strings or TokenFeatures

No item's output depends on the other items in its batch or on the batch size: every attention and
pooling takes a padding mask, and the only batch-statistics layer (HTSAT's input BatchNorm) stays in
eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.backbones.base import Backbone, TokenFeatures
from model.data import ManifestEmbeddings, embed_manifest
from model.fusion_separation import AUDIO, TEXT, Fusion, Separation
from model.loss import PairLogits, init_log_scale
from model.model_config import ModelConfig

MAX_LOGIT_SCALE = 100.0


class FSCLAP(nn.Module):
    def __init__(self, config: ModelConfig, backbone: Backbone):
        super().__init__()
        self.config = config
        self.backbone = backbone
        d = config.d_model
        self.native = config.pooling == "native"
        self.audio_in = nn.Sequential(nn.Linear(backbone.audio_dim, d), nn.LayerNorm(d))
        self.text_in = nn.Sequential(nn.Linear(backbone.text_dim, d), nn.LayerNorm(d))
        self.fusion = (
            Fusion(d, config.heads, config.fusion_layers, config.ffn_mult, config.dropout)
            if config.fusion
            else None
        )
        self.separation = Separation(
            d,
            config.separation,
            config.pooling if not self.native else "mean",
            config.ffn_mult,
            config.dropout,
        )
        self.proj = nn.ModuleList([nn.Linear(d, config.embed_dim), nn.Linear(d, config.embed_dim)])
        scale = torch.tensor(init_log_scale(config.temperature))
        self.log_scale = nn.Parameter(scale.clone(), requires_grad=config.learn_temperature)
        self.pair_log_scale = nn.Parameter(scale.clone(), requires_grad=config.learn_temperature)

    # -- properties -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.log_scale.device

    @property
    def sample_rate(self) -> int:
        return self.backbone.sample_rate

    @property
    def has_pair_scoring(self) -> bool:
        """True when pair scores differ from bi scores: a fusion module whose pair path was trained."""
        return self.fusion is not None and self.config.pair_scoring

    def logit_scale(self) -> Tensor:
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def pair_logit_scale(self) -> Tensor:
        return self.pair_log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def head_modules(self) -> list[nn.Module]:
        """The fusion-separation part (its own learning rate)."""
        mods = [self.audio_in, self.text_in, self.separation, self.proj]
        return mods + ([self.fusion] if self.fusion is not None else [])

    # -- token features ---------------------------------------------------------------------------
    def audio_tokens(self, batch: dict[str, Tensor]) -> TokenFeatures:
        """Backbone audio tokens projected to ``d_model`` (input of fusion / separation)."""
        return self.project_audio(self.backbone.encode_audio(batch))

    def text_tokens(self, batch: dict[str, Tensor]) -> TokenFeatures:
        return self.project_text(self.backbone.encode_text(batch))

    def project_audio(self, tf: TokenFeatures) -> TokenFeatures:
        return TokenFeatures(self.audio_in(tf.tokens), tf.mask, tf.pooled)

    def project_text(self, tf: TokenFeatures) -> TokenFeatures:
        return TokenFeatures(self.text_in(tf.tokens), tf.mask, tf.pooled)

    # -- bi path ----------------------------------------------------------------------------------
    def bi_embed(self, tf: TokenFeatures, modality: int) -> tuple[Tensor, Tensor]:
        """(L2-normalised embedding, pooled pre-projection feature) of one modality, no partner."""
        if self.native:
            return F.normalize(tf.pooled.float(), dim=-1), tf.pooled
        x, valid = tf.tokens, tf.mask
        if self.fusion is not None:
            ids = torch.full(valid.shape[1:], modality, dtype=torch.long, device=x.device)
            x = self.fusion(x, valid, ids)
        pooled = self.separation(x, valid, modality)
        return F.normalize(self.proj[modality](pooled).float(), dim=-1), pooled

    # -- pair path --------------------------------------------------------------------------------
    def pair_cosine(
        self,
        audio: TokenFeatures,
        text: TokenFeatures,
        audio_index: Tensor,
        text_index: Tensor,
        chunk: int = 2048,
    ) -> Tensor:
        """Cosine of jointly fused pairs ``(audio[audio_index[p]], text[text_index[p]])`` -> (P,)."""
        if not self.has_pair_scoring:
            a, _ = self.bi_embed(audio, AUDIO)
            t, _ = self.bi_embed(text, TEXT)
            return (a[audio_index] * t[text_index]).sum(-1)
        out = []
        for start in range(0, len(audio_index), chunk):
            ai, ti = audio_index[start : start + chunk], text_index[start : start + chunk]
            a = audio.select(ai).trimmed()
            t = text.select(ti).trimmed()
            n = a.tokens.shape[1]
            x = torch.cat([a.tokens, t.tokens.to(a.tokens.dtype)], dim=1)
            valid = torch.cat([a.mask, t.mask], dim=1)
            ids = torch.cat(
                [
                    torch.full((n,), AUDIO, device=x.device),
                    torch.full((t.tokens.shape[1],), TEXT, device=x.device),
                ]
            )
            x = self.fusion(x, valid, ids)
            pa = self.separation(x[:, :n], a.mask, AUDIO)
            pt = self.separation(x[:, n:], t.mask, TEXT)
            out.append(
                (
                    F.normalize(self.proj[AUDIO](pa).float(), dim=-1)
                    * F.normalize(self.proj[TEXT](pt).float(), dim=-1)
                ).sum(-1)
            )
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    def training_pair_logits(
        self,
        audio: TokenFeatures,
        text: TokenFeatures,
        bi_logits: Tensor,
        exclude: Tensor | None,
        mode: str = "hard",
        k: int = 8,
    ) -> PairLogits | None:
        """Pair logits for the pair loss: every in-batch pair (``mode="all"``) or, per row, the positive plus
        the ``k`` hardest in-batch negatives by bi score, in both directions (``mode="hard"``)."""
        if not self.has_pair_scoring or mode == "none":
            return None
        b = bi_logits.shape[0]
        dev = bi_logits.device
        eye = torch.eye(b, dtype=torch.bool, device=dev)
        negative = ~eye if exclude is None else ~eye & ~exclude
        scale = self.pair_logit_scale()
        if mode == "all":
            ai = torch.arange(b, device=dev).repeat_interleave(b)
            ti = torch.arange(b, device=dev).repeat(b)
            logits = (self.pair_cosine(audio, text, ai, ti) * scale).view(b, b)
            return PairLogits(logits, eye, negative, logits.t(), eye, negative.t())
        k = max(0, min(k, b - 1))
        blocks = []
        for scores, neg in (
            (bi_logits, negative),
            (bi_logits.t(), negative.t()),
        ):  # a2t rows, then t2a rows
            masked = scores.detach().float().masked_fill(~neg, float("-inf"))
            top_val, top_idx = masked.topk(k, dim=1) if k else (masked[:, :0], masked[:, :0].long())
            cand = torch.cat(
                [torch.arange(b, device=dev)[:, None], top_idx], dim=1
            )  # (B, 1+k), positive first
            valid_neg = torch.isfinite(top_val)
            pos = torch.zeros_like(cand, dtype=torch.bool)
            pos[:, 0] = True
            negm = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=dev), valid_neg], dim=1)
            rows = torch.arange(b, device=dev)[:, None].expand_as(cand)
            blocks.append((rows, cand, pos, negm))
        (ra, ca, pa, na), (rt, ct, pt, nt) = blocks
        # a2t rows: audio fixed, text varies; t2a rows: text fixed, audio varies
        ai = torch.cat([ra.reshape(-1), ct.reshape(-1)])
        ti = torch.cat([ca.reshape(-1), rt.reshape(-1)])
        cos = self.pair_cosine(audio, text, ai, ti) * scale
        a2t, t2a = cos[: ra.numel()].view_as(ca), cos[ra.numel() :].view_as(ct)
        return PairLogits(a2t, pa, na, t2a, pt, nt)

    # -- training forward -------------------------------------------------------------------------
    def forward(
        self,
        audio: dict[str, Tensor] | TokenFeatures,
        text: dict[str, Tensor] | TokenFeatures,
        exclude: Tensor | None = None,
        pair_mode: str = "none",
        pair_k: int = 8,
    ) -> dict:
        """Everything the training objective needs for one batch (one call, so DDP sees one forward).

        ``audio``/``text``: backbone input batches, or the backbone's ``TokenFeatures`` (cached frozen
        features). Returns ``logits`` (B, B) = scale * bi cosine, the pooled pre-projection features of both
        modalities (eq. 3), and ``pair`` (PairLogits or None).
        """
        a_raw = audio if isinstance(audio, TokenFeatures) else self.backbone.encode_audio(audio)
        t_raw = text if isinstance(text, TokenFeatures) else self.backbone.encode_text(text)
        a_tf, t_tf = self.project_audio(a_raw), self.project_text(t_raw)
        a_emb, a_pooled = self.bi_embed(a_tf, AUDIO)
        t_emb, t_pooled = self.bi_embed(t_tf, TEXT)
        scale = self.logit_scale()
        logits = scale * a_emb @ t_emb.t()
        pair = (
            self.training_pair_logits(a_tf, t_tf, logits, exclude, pair_mode, pair_k)
            if pair_mode != "none"
            else None
        )
        return {
            "logits": logits,
            "audio_pooled": a_pooled,
            "text_pooled": t_pooled,
            "pair": pair,
            "audio_emb": a_emb,
            "text_emb": t_emb,
            "logit_scale": scale,
        }

    # -- inference API ----------------------------------------------------------------------------
    def _audio_batch(self, waves: Sequence[np.ndarray]) -> dict[str, Tensor]:
        pre = self.backbone.audio_preprocessor
        return {k: v.to(self.device) for k, v in pre.collate([pre(w) for w in waves]).items()}

    def _text_batch(self, texts: Sequence[str]) -> dict[str, Tensor]:
        return {
            k: v.to(self.device) for k, v in self.backbone.text_preprocessor(list(texts)).items()
        }

    @torch.no_grad()
    def audio_features(self, waves: Sequence[np.ndarray]) -> TokenFeatures:
        """Projected token features of waveforms (mono float32 at ``sample_rate``, already cropped)."""
        return self.audio_tokens(self._audio_batch(waves))

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> TokenFeatures:
        return self.text_tokens(self._text_batch(texts))

    @torch.no_grad()
    def encode_audio(self, waves: Sequence[np.ndarray] | TokenFeatures) -> Tensor:
        """Bi embeddings (B, E), L2-normalised, of waveforms or of ``audio_features`` output."""
        tf = waves if isinstance(waves, TokenFeatures) else self.audio_features(waves)
        return self.bi_embed(tf.to(self.device), AUDIO)[0]

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str] | TokenFeatures) -> Tensor:
        """Bi embeddings (B, E), L2-normalised, of captions / queries."""
        tf = texts if isinstance(texts, TokenFeatures) else self.text_features(texts)
        return self.bi_embed(tf.to(self.device), TEXT)[0]

    @torch.no_grad()
    def pair_scores(
        self,
        audio: Sequence[np.ndarray] | TokenFeatures | Sequence[TokenFeatures],
        text: Sequence[str] | TokenFeatures | Sequence[TokenFeatures],
    ) -> Tensor:
        """Pair cosines (P,) of aligned pairs ``(audio[p], text[p])``, each pair fused jointly.

        Inputs: waveforms / strings, batched ``TokenFeatures`` (from ``audio_features``/``text_features``),
        or lists of single-item ``TokenFeatures`` (``ManifestEmbeddings.audio_tokens``). Without the fusion
        module (or with ``pair_scoring`` off: a model trained with ``pair_loss=none``) the pair score equals the
        bi score.
        """
        a = self._as_features(audio, self.audio_features)
        t = self._as_features(text, self.text_features)
        if len(a) != len(t):
            raise ValueError(
                f"pair_scores needs aligned pairs, got {len(a)} audio and {len(t)} text items"
            )
        idx = torch.arange(len(a), device=self.device)
        return self.pair_cosine(a, t, idx, idx)

    def _as_features(self, items, featurize) -> TokenFeatures:
        if isinstance(items, TokenFeatures):
            return items.to(self.device, dtype=self.log_scale.dtype)
        items = list(items)
        if items and isinstance(items[0], TokenFeatures):
            return TokenFeatures.pad_cat(items).to(self.device, dtype=self.log_scale.dtype)
        return featurize(items)

    @torch.no_grad()
    def embed_manifest(
        self,
        manifest,
        batch_size: int = 32,
        workers: int = 0,
        keep_tokens: bool = False,
        show_progress: bool = True,
    ) -> ManifestEmbeddings:
        """Bi embeddings of every usable clip of a ``ClipManifest`` (deterministic crops, input order kept).

        Unreadable audio and empty captions are skipped and listed in ``failures``. Results do not depend
        on ``batch_size`` or ``workers``.
        """
        return embed_manifest(
            self,
            manifest,
            batch_size=batch_size,
            workers=workers,
            keep_tokens=keep_tokens,
            show_progress=show_progress,
        )

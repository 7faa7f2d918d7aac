"""Clip-manifest datasets for training and embedding.

Reads the clip manifest contract (``fsclap.manifest.ClipManifest``: ``audio_path``/``wav_fp``,
``caption``/``style_prompt``, optional ``start_s``/``end_s``), decodes with ``fsclap.audio.load_audio``
at the backbone's sample rate, crops to the backbone's window (random crop for training, centre crop
otherwise: evaluation is deterministic), optionally applies label-preserving augmentation
(``model.augment``; training sets only), and runs the backbone's audio preprocessor and tokenizer in the
data-loader workers.

Bad rows never stop a run: empty captions and missing files are dropped up front, undecodable audio
when it is first read; every one is reported as ``(clip_id, audio_path, reason)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from fsclap import caption_writer
from fsclap.audio import load_audio
from fsclap.log import get_logger, progress
from fsclap.manifest import ClipManifest, normalise_caption
from model.augment import VoiceAugment
from model.backbones.base import AudioPreprocessor, TextPreprocessor, TokenFeatures
from model.fusion_separation import AUDIO, TEXT
from model.sampler import OneAttributeSampler

log = get_logger("model.data")
# The Rust tokenizer's thread pool, once used in the main process, deadlocks in forked loader workers.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True)
class ClipRow:
    clip_id: str
    audio_path: str
    caption: str
    start_s: float | None
    end_s: float | None
    attributes: dict[str, str] = field(
        default_factory=dict, hash=False, compare=False
    )  # style levels, if known


def crop_bounds(n: int, max_len: int, rng: np.random.Generator | None) -> tuple[int, int]:
    """Window of ``max_len`` samples: random if ``rng`` is given, else centred (deterministic)."""
    if n <= max_len:
        return 0, n
    start = int(rng.integers(0, n - max_len + 1)) if rng is not None else (n - max_len) // 2
    return start, start + max_len


STYLE_LEVELS = ("pitch", "speed", "energy", "emotion")


def levels_key(attributes: dict[str, str]) -> str | None:
    """A caption key from a clip's levels: clips with the same levels are positives of each other's captions,
    however each was phrased. None when no style level is known."""
    known = {k: v for k, v in attributes.items() if v and v != "unknown"}
    if not any(k in STYLE_LEVELS for k in known):
        return None
    return "levels:" + ",".join(f"{k}={known[k]}" for k in sorted(known))


class ClipDataset(Dataset):
    """One item per usable manifest row: ``{"index", "audio": preprocessed, "caption"}`` or ``{"index", "error"}``.

    ``random_crop``: training crops are drawn from a generator seeded by ``(seed, epoch, index)``, so
    they do not depend on worker count or order (resume reproduces them). ``augment``: a
    ``(wave, sample_rate, rng) -> wave`` transform (``model.augment.VoiceAugment``) applied after the crop,
    seeded the same way; give it to training sets only. ``skip_audio``: indices whose audio is not needed
    (features cached for a frozen encoder). ``captioner``: ``(attributes, key, stored caption) -> caption``
    that re-phrases a clip's levels (in the stored caption's language); with probability ``recaption`` per (seed, epoch, index) a clip with known levels gets a fresh
    caption instead of its stored one, so the text side learns the levels, not one phrasing (training only).
    Such clips are keyed by their levels (``levels_key``) for the loss's same-caption mask.
    """

    def __init__(
        self,
        manifest: ClipManifest,
        audio_pre: AudioPreprocessor,
        random_crop: bool = False,
        seed: int = 0,
        max_seconds: float | None = None,
        augment: Callable[[np.ndarray, int, np.random.Generator], np.ndarray] | None = None,
        captioner: Callable[[dict[str, str], str, str], str] | None = None,
        recaption: float = 0.0,
    ):
        self.audio_pre = audio_pre
        self.captioner = captioner if recaption > 0 else None
        self.recaption = recaption
        self.random_crop = random_crop
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.max_seconds = max_seconds or audio_pre.max_seconds
        self.skip_audio: set[int] = set()  # audio features cached elsewhere (frozen encoder)
        self.failed: dict[int, str] = {}  # index -> reason, known from an earlier pass
        problems = manifest.problems()
        bad = set(problems["clip_id"])
        self.skipped: list[tuple[str, str, str]] = [
            tuple(r) for r in problems.itertuples(index=False)
        ]
        self.rows = [
            ClipRow(c.clip_id, str(c.audio_path), c.caption, c.start_s, c.end_s, dict(c.attributes))
            for c in manifest
            if c.clip_id not in bad
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def caption(self, index: int) -> tuple[str, str | None]:
        """The caption this epoch shows for a row, and its levels key when re-phrasing is on."""
        row = self.rows[index]
        if self.captioner is None:
            return row.caption, None
        key = levels_key(row.attributes)
        if key is None:
            return row.caption, None
        draw = np.random.default_rng([self.seed, self.epoch, index, 2]).random()
        if draw >= self.recaption:
            return row.caption, key
        return self.captioner(
            row.attributes, f"{row.clip_id}|{self.seed}|{self.epoch}", row.caption
        ), key

    def __getitem__(self, index: int) -> dict:
        caption, key = self.caption(index)
        row = self.rows[index]
        item = {"index": index, "caption": caption}
        if key is not None:
            item["caption_key"] = key
        if index in self.failed:
            item["error"] = self.failed[index]
            return item
        if index in self.skip_audio:
            return item
        try:
            wave, _ = load_audio(
                row.audio_path,
                sample_rate=self.audio_pre.sample_rate,
                start_s=row.start_s,
                end_s=row.end_s,
            )
            if wave.size == 0 or not np.isfinite(wave).all():
                raise ValueError("empty audio" if wave.size == 0 else "audio holds NaN/inf samples")
            max_len = int(round(self.max_seconds * self.audio_pre.sample_rate))
            rng = (
                np.random.default_rng([self.seed, self.epoch, index]) if self.random_crop else None
            )
            a, b = crop_bounds(wave.shape[0], max_len, rng)
            wave = wave[a:b]
            if self.augment is not None:
                wave = self.augment(
                    wave,
                    self.audio_pre.sample_rate,
                    np.random.default_rng([self.seed, self.epoch, index, 1]),
                )
            item["audio"] = self.audio_pre(wave)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is recorded, never fatal
            item["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        return item


@dataclass
class Batch:
    indices: Tensor
    clip_ids: list[str]
    captions: list[str]
    caption_keys: list[str]
    audio: dict[str, Tensor] | None
    text: dict[str, Tensor]
    failures: list[tuple[str, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.indices)

    def to(self, device) -> Batch:
        audio = (
            None
            if self.audio is None
            else {k: v.to(device, non_blocking=True) for k, v in self.audio.items()}
        )
        text = {k: v.to(device, non_blocking=True) for k, v in self.text.items()}
        return Batch(
            self.indices,
            self.clip_ids,
            self.captions,
            self.caption_keys,
            audio,
            text,
            self.failures,
        )


class Collator:
    """Drops failed items (reported in ``Batch.failures``), pads audio features, tokenizes captions."""

    def __init__(self, dataset: ClipDataset, text_pre: TextPreprocessor):
        self.rows = dataset.rows
        self.audio_pre = dataset.audio_pre
        self.text_pre = text_pre

    def __call__(self, items: Sequence[dict]) -> Batch:
        failures = [
            (self.rows[it["index"]].clip_id, self.rows[it["index"]].audio_path, it["error"])
            for it in items
            if "error" in it
        ]
        good = [it for it in items if "error" not in it]
        captions = [it["caption"] for it in good]
        keys = [it.get("caption_key") or normalise_caption(it["caption"]) for it in good]
        with_audio = sum("audio" in it for it in good)
        if with_audio not in (0, len(good)):
            raise RuntimeError(
                "a batch mixes cached and decoded audio"
            )  # the trainer caches all or nothing
        audio = (
            self.audio_pre.collate([it["audio"] for it in good]) if good and with_audio else None
        )
        text = self.text_pre(captions) if captions else {}
        return Batch(
            torch.tensor([it["index"] for it in good], dtype=torch.long),
            [self.rows[it["index"]].clip_id for it in good],
            captions,
            keys,
            audio,
            text,
            failures,
        )


class EpochSampler(Sampler[int]):
    """Deterministic order per (seed, epoch); shards for DDP; can skip the batches a resumed run already did."""

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle, self.rank, self.world = n, seed, shuffle, rank, world
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        per_rank = len(idx) // self.world if self.world > 1 else len(idx)
        return idx[self.rank * per_rank : (self.rank + 1) * per_rank] if self.world > 1 else idx

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :])

    def __len__(self) -> int:
        return max(0, len(self.order()) - self.skip)


def training_augment(config) -> Callable | None:
    """The training set's augmentation for a ``TrainConfig`` (None when off)."""
    return VoiceAugment(config.augment_params) if config.augment else None


CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]")


def training_captioner(config) -> Callable[[dict[str, str], str, str], str] | None:
    """The caption writer that re-phrases training clips' levels (``config.recaption``), None when off. A stored
    caption in Chinese is re-phrased in Chinese (the writer's other language), any other in English."""
    if not config.recaption:
        return None

    def rephrase(attributes: dict[str, str], key: str, stored: str) -> str:
        # the writer that phrased the corpus captions (looked up per call: benchmarks swap it)
        return caption_writer.write_caption(
            attributes, key=key, seed=config.seed, language="zh" if CJK.search(stored) else "en"
        )

    return rephrase


def training_sampler(config, dataset: ClipDataset, rank: int = 0, world: int = 1) -> Sampler[int]:
    """The training order for a ``TrainConfig``: random, or hard-negative groups (``model.sampler``)."""
    if config.sampler == "attribute":
        return OneAttributeSampler(
            [r.attributes for r in dataset.rows], config.seed, config.sampler_group, rank, world
        )
    return EpochSampler(len(dataset), config.seed, shuffle=True, rank=rank, world=world)


def make_loader(
    dataset: ClipDataset,
    text_pre: TextPreprocessor,
    batch_size: int,
    sampler: Sampler,
    workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    # an own generator: creating the iterator must not consume the global RNG (dropout), or a resumed run
    # would diverge from an uninterrupted one
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=Collator(dataset, text_pre),
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
        worker_init_fn=_quiet_worker,
    )


def _quiet_worker(_):
    torch.set_num_threads(
        1
    )  # decoding/feature extraction per worker; keep the main process's cores free


@dataclass
class ManifestEmbeddings:
    """Bi embeddings of a whole clip manifest, row-aligned with its usable clips.

    ``audio``/``text``: (N, E) float32 L2-normalised. ``failures``: (clip_id, audio_path, reason) of
    skipped rows. With ``keep_tokens`` the projected token features are kept (CPU, float16) for pair re-ranking.
    """

    audio: Tensor
    text: Tensor
    clip_ids: list[str]
    captions: list[str]
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    audio_tokens: list[TokenFeatures] | None = None
    text_tokens: list[TokenFeatures] | None = None


def embed_manifest(
    model,
    manifest: ClipManifest,
    batch_size: int = 32,
    workers: int = 0,
    keep_tokens: bool = False,
    show_progress: bool = True,
):
    """See ``FSCLAP.embed_manifest``."""
    dataset = ClipDataset(manifest, model.backbone.audio_preprocessor, random_crop=False)
    loader = make_loader(
        dataset,
        model.backbone.text_preprocessor,
        batch_size,
        EpochSampler(len(dataset), 0, shuffle=False),
        workers=workers,
    )
    was_training = model.training
    model.eval()
    audio, text, ids, caps = [], [], [], []
    a_tok, t_tok = ([], []) if keep_tokens else (None, None)
    failures = list(dataset.skipped)
    batches = progress(loader, desc="embedding", total=len(loader)) if show_progress else loader
    with torch.no_grad():
        for batch in batches:
            failures.extend(batch.failures)
            if not len(batch):
                continue
            batch = batch.to(model.device)
            at = model.audio_tokens(batch.audio)
            tt = model.text_tokens(batch.text)
            audio.append(model.bi_embed(at, AUDIO)[0].cpu())
            text.append(model.bi_embed(tt, TEXT)[0].cpu())
            ids.extend(batch.clip_ids)
            caps.extend(batch.captions)
            if keep_tokens:
                a_tok.extend(f.to("cpu", torch.float16) for f in at.unbind())
                t_tok.extend(f.to("cpu", torch.float16) for f in tt.unbind())
    model.train(was_training)
    dim = model.config.embed_dim
    return ManifestEmbeddings(
        torch.cat(audio) if audio else torch.zeros(0, dim),
        torch.cat(text) if text else torch.zeros(0, dim),
        ids,
        caps,
        failures,
        a_tok,
        t_tok,
    )

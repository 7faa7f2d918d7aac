"""The FS-CLAP trainer (paper §4.2): AdamW, per-module learning rates, cosine schedule with warm-up,
gradient accumulation, mixed precision on GPU, frozen-backbone feature caches, validation every epoch
with best-checkpoint selection, exact resume, metrics CSV + plot, DDP through torchrun.

Run directory layout::

    RUN_DIR/train_config.json       the resolved training config (+ model config, + the schedule actually used)
    RUN_DIR/checkpoints/last/       resumable state: model + optimizer/scheduler/scaler/RNG + progress
    RUN_DIR/checkpoints/best/       best validation checkpoint (what ``load_checkpoint(RUN_DIR)`` loads)
    RUN_DIR/metrics.csv             one row per epoch: train loss, validation metrics (percent)
    RUN_DIR/train_log.csv           one row every ``log_every`` optimizer steps
    RUN_DIR/curves.png              loss and validation curves
    RUN_DIR/skipped.csv             manifest rows skipped (missing/corrupt audio, empty caption) and why

Learning rates: ``lr_backbone`` for pretrained encoders (MiniLM, LAION-CLAP), ``lr_fusion`` for the
fusion-separation head (input projections, fusion, separation, projections, temperatures) and
``lr_scratch`` for encoders trained from scratch (the offline log-mel audio encoder: 4e-5 leaves it
barely trained within a short schedule, see the benchmark). Biases, norms, modality embeddings and
temperatures get no weight decay (open_clip's rule).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fsclap.errors import FsclapError
from fsclap.io import UnsafeFile, atomic_path, load_tensors, write_json
from fsclap.layout import RunDir
from fsclap.log import get_logger, progress
from fsclap.manifest import ClipManifest
from model.backbones.base import TokenFeatures
from model.data import (
    Batch,
    ClipDataset,
    EpochSampler,
    make_loader,
    training_augment,
    training_captioner,
    training_sampler,
)
from model.distributed import gather_caption_codes, gather_counts, gather_rows, process_info
from model.factory import create_model, save_checkpoint
from model.fsclap import FSCLAP
from model.fusion_separation import AUDIO, TEXT
from model.loss import ContrastiveObjective, same_caption_mask, same_code_mask
from model.metrics import caption_keys, embedding_scores, evaluate_embeddings, rank_gallery
from model.train_config import FEW_STEPS, Schedule, TrainConfig, resolve_schedule

log = get_logger("model.training")

# settings that may change between a run and its resumption without changing what is computed
RUNTIME_KEYS = {
    "device",
    "workers",
    "cpu_threads",
    "resume",
    "stop_after_steps",
    "log_every",
    "save_every",
    "val_batch_size",
}


class TrainingDiverged(FsclapError):
    """The loss became NaN/inf; the last good checkpoint is left as it was."""


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int | None
    best_metric: float | None
    best_metrics: dict[str, float]
    epochs_done: int
    steps: int
    skipped: int
    finished: bool
    schedule: Schedule | None = None

    @property
    def world_size(self) -> int:
        return self.schedule.world if self.schedule is not None else 1

    @property
    def epochs(self) -> int | None:
        """The epochs the run was planned for (derived or given)."""
        return self.schedule.epochs if self.schedule is not None else None

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> TrainResult:
        """What a run left on disk (its last saved state): e.g. after a torchrun job, or a
        resumable run stopped early."""
        layout = RunDir(run_dir)
        state_file = RunDir.state_file(layout.last)
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError) as exc:
            raise FsclapError(f"training left no readable state in {layout.last}: {exc}") from None
        schedule = Schedule.from_json(state["schedule"]) if state.get("schedule") else None
        epoch = int(state["epoch"])
        return cls(
            layout.path,
            state.get("best_epoch"),
            state.get("best_metric"),
            state.get("best_metrics") or {},
            epoch,
            int(state.get("step", 0)),
            len(state.get("skipped") or []),
            finished=schedule is not None and epoch >= schedule.epochs,
            schedule=schedule,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "epochs_done": self.epochs_done,
            "epochs": self.epochs,
            "steps": self.steps,
            "finished": self.finished,
            "world_size": self.world_size,
            "checkpoint": str(RunDir(self.run_dir).best),
        }


# ---------------------------------------------------------------------------------------------
def validation_metrics(
    model: FSCLAP,
    audio_emb: torch.Tensor,
    text_emb: torch.Tensor,
    captions: list[str],
    audio_tok: list[TokenFeatures] | None = None,
    text_tok: list[TokenFeatures] | None = None,
    rerank_k: int = 0,
) -> dict[str, float]:
    """Leak-free full-gallery metrics in percent: bi (``a2t_R@1`` ...) and, with token features and a fusion
    module, bi-shortlist + pair re-ranking (``rerank_a2t_R@1`` ...). The one place the trainer scores
    validation; it uses the project's evaluator (``model.metrics``)."""
    result = evaluate_embeddings(audio_emb, text_emb, captions)
    out = {f"a2t_{k}": v for k, v in result.a2t.summary().items()}
    out.update({f"t2a_{k}": v for k, v in result.t2a.summary().items()})
    if rerank_k and audio_tok is not None and model.has_pair_scoring:
        keys = caption_keys(captions)
        k = min(rerank_k, len(captions))

        def reranked(queries, gallery, q_tok, g_tok, query_is_audio):
            bi_rows = embedding_scores(queries, gallery)

            def rows(start, stop):
                scores = bi_rows(start, stop).double()
                short = scores.topk(k, dim=1).indices
                qi = torch.arange(start, stop)[:, None].expand_as(short).reshape(-1)
                gi = short.reshape(-1)
                q_feats = [q_tok[i] for i in qi.tolist()]
                g_feats = [g_tok[j] for j in gi.tolist()]
                a, t = (q_feats, g_feats) if query_is_audio else (g_feats, q_feats)
                pair = model.pair_scores(a, t).double().cpu().view_as(short)
                # shortlisted items are ordered by pair score, ahead of everything else (kept in bi order)
                return scores.scatter(1, short, 10.0 + pair)

            return rank_gallery(rows, keys, keys, chunk_size=64)

        with torch.no_grad():
            a2t = reranked(audio_emb, text_emb, audio_tok, text_tok, True)
            t2a = reranked(text_emb, audio_emb, text_tok, audio_tok, False)
        out.update({f"rerank_a2t_{k_}": v for k_, v in a2t.summary().items()})
        out.update({f"rerank_t2a_{k_}": v for k_, v in t2a.summary().items()})
    out["n"] = len(captions)
    return out


def training_loss(
    objective: ContrastiveObjective,
    out: dict,
    exclude: torch.Tensor,
    caption_keys: list[str],
    counts: list[int] | None = None,
):
    """The objective on one forward's output. With ``counts`` (items per process, under DDP) the bi
    loss and the regulariser cover the global batch, identical on every process; the pair loss stays local."""
    logits, a_pooled, t_pooled = out["logits"], out["audio_pooled"], out["text_pooled"]
    if counts is not None:
        a_emb, t_emb = gather_rows(out["audio_emb"], counts), gather_rows(out["text_emb"], counts)
        a_pooled, t_pooled = (
            gather_rows(a_pooled.float(), counts),
            gather_rows(t_pooled.float(), counts),
        )
        exclude = same_code_mask(gather_caption_codes(caption_keys, counts, logits.device))
        logits = out["logit_scale"] * a_emb @ t_emb.t()
    return objective(logits.float(), exclude, a_pooled, t_pooled, out["pair"])


# ---------------------------------------------------------------------------------------------
class FeatureCache:
    """Backbone outputs of frozen encoders, per item, unpadded, float16 on the CPU."""

    def __init__(self):
        self.items: dict[Any, TokenFeatures] = {}

    def __contains__(self, key) -> bool:
        return key in self.items

    def put(self, keys, feats: TokenFeatures) -> None:
        for key, item in zip(keys, feats.unbind()):
            self.items[key] = item.to("cpu", torch.float16)

    def get(self, keys, device, dtype=torch.float32) -> TokenFeatures:
        with torch.autocast(
            "cpu", enabled=False
        ):  # a copy of stored float16 data, not model compute
            return TokenFeatures.pad_cat([self.items[k] for k in keys]).to(device, dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Train one model on a train manifest, validating on a val manifest, into ``run_dir``."""

    def __init__(
        self,
        config: TrainConfig,
        train_manifest: ClipManifest,
        val_manifest: ClipManifest,
        run_dir: str | Path,
        settings=None,
        model: FSCLAP | None = None,
    ):
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.layout = RunDir(self.run_dir)
        self.rank, self.local_rank, self.world = process_info()
        self.is_main = self.rank == 0
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)
        self.device = self._device(settings)
        if self.device.type == "cpu":
            # oversubscribed cores make every small op wait on descheduled threads (measured 60x slower)
            threads = config.cpu_threads or max(1, (os.cpu_count() or 1) - config.workers)
            torch.set_num_threads(
                min(threads, torch.get_num_threads()) if config.cpu_threads is None else threads
            )
        seed_everything(config.seed)
        self.model_config = config.model_config_resolved()
        self.model = (
            model
            if model is not None
            else create_model(self.model_config, settings, seed=config.seed)
        )
        self.model.to(self.device)
        self._freeze()
        self.train_set = ClipDataset(
            train_manifest,
            self.model.backbone.audio_preprocessor,
            random_crop=not (config.freeze_audio and config.cache_frozen),
            seed=config.seed,
            max_seconds=config.max_audio_seconds,
            augment=None
            if config.freeze_audio and config.cache_frozen
            else training_augment(config),
            captioner=training_captioner(config),
            recaption=config.recaption,
        )
        self.val_set = ClipDataset(
            val_manifest,
            self.model.backbone.audio_preprocessor,
            random_crop=False,
            max_seconds=config.max_audio_seconds,
        )
        self.skipped: list[tuple[str, str, str, str]] = [
            ("train", *r) for r in self.train_set.skipped
        ]
        self.skipped += [("val", *r) for r in self.val_set.skipped]
        self.data_fingerprint = {
            "train": _data_fingerprint(self.train_set),
            "val": _data_fingerprint(self.val_set),
        }
        if len(self.train_set) < 2:
            raise FsclapError(
                f"training manifest has {len(self.train_set)} usable clip(s); need at least 2"
            )
        if len(self.val_set) < 1:
            raise FsclapError("validation manifest has no usable clip")
        # a resumed run keeps the schedule it started with, even if the derivation rule changed since
        self.schedule = self._saved_schedule() or resolve_schedule(
            config, len(self.train_set), self.world
        )
        self.batch_size = self.schedule.batch_size
        self.grad_accum = self.schedule.grad_accum
        self.epochs = self.schedule.epochs
        self.micro_per_epoch = self.schedule.micro_batches_per_epoch
        self.steps_per_epoch = self.schedule.steps_per_epoch
        self.total_steps = self.schedule.total_steps
        self.objective = ContrastiveObjective(
            config.hn_loss, config.gamma, config.reg_weight, config.pair_weight
        )
        self.pair_mode = config.pair_loss if self.model.has_pair_scoring else "none"
        self.optimizer = torch.optim.AdamW(self._param_groups(), betas=(0.9, 0.98), eps=1e-6)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            _cosine_with_warmup(self.schedule.warmup_steps, self.total_steps, config.min_lr_ratio),
        )
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.ddp = None
        if self.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.local_rank] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.text_cache = FeatureCache() if config.freeze_text and config.cache_frozen else None
        self.audio_cache = FeatureCache() if config.freeze_audio and config.cache_frozen else None
        # progress
        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.epoch_rows: list[dict] = []
        self.step_rows: list[dict] = []
        self.tb = None

    # -- setup helpers ------------------------------------------------------------------------
    def _device(self, settings) -> torch.device:
        if self.world > 1 and torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        name = self.cfg.device
        if name == "auto":
            name = (
                settings.resolved_device()
                if settings is not None
                else ("cuda" if torch.cuda.is_available() else "cpu")
            )
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise FsclapError(f"device {name} requested but CUDA is not available")
        return torch.device(name)

    def _amp_dtype(self):
        if not self.cfg.amp:
            return None
        if self.cfg.amp_dtype == "auto":
            if self.device.type != "cuda":
                return None  # CPU autocast is slower than float32 on most CPUs
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[self.cfg.amp_dtype]

    def _autocast(self):
        return (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else nullcontext()
        )

    def _freeze(self) -> None:
        bb = self.model.backbone
        self.frozen: list[nn.Module] = []
        if self.cfg.freeze_text:
            self.frozen.append(bb.text_encoder_module())
        if self.cfg.freeze_audio:
            self.frozen.append(bb.audio_encoder_module())
        for module in self.frozen:
            module.requires_grad_(False)

    def _param_groups(self) -> list[dict]:
        model = self.model
        scratch = {id(p) for m in model.backbone.scratch_modules() for p in m.parameters()}
        backbone = {id(p) for p in model.backbone.parameters()}
        groups: dict[tuple[str, bool], list] = {}
        lrs = {
            "backbone": self.cfg.lr_backbone,
            "scratch": self.cfg.lr_scratch,
            "fusion": self.cfg.lr_fusion,
        }
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            kind = "scratch" if id(p) in scratch else "backbone" if id(p) in backbone else "fusion"
            no_decay = (
                p.ndim < 2 or "log_scale" in name or "modality" in name or "norm" in name.lower()
            )
            groups.setdefault((kind, no_decay), []).append(p)
        return [
            {
                "params": ps,
                "lr": lrs[kind],
                "weight_decay": 0.0 if nd else self.cfg.weight_decay,
                "name": f"{kind}{'_nd' if nd else ''}",
            }
            for (kind, nd), ps in sorted(groups.items())
        ]

    # -- paths --------------------------------------------------------------------------------
    @property
    def last_dir(self) -> Path:
        return self.layout.last

    @property
    def best_dir(self) -> Path:
        return self.layout.best

    # -- main loop ----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        resumed = self._maybe_resume()
        if self.is_main:
            write_json(
                self.layout.train_config,
                {
                    "train": self.cfg.model_dump(mode="json"),
                    "model": self.model_config.model_dump(mode="json"),
                    "backbone": self.model.backbone.describe(),
                    "world_size": self.world,
                    "train_clips": len(self.train_set),
                    "val_clips": len(self.val_set),
                    "schedule": self.schedule.to_json(),
                },
            )
            self._open_tensorboard()
        log.info("schedule: %s", self.schedule.describe())
        if self.schedule.total_steps < FEW_STEPS:
            derived = set(self.schedule.derived)
            hint = (
                "the corpus is very small"
                if self.schedule.preset == "auto" and {"batch_size", "epochs"} <= derived
                else "leave batch_size/epochs unset (preset auto), or use a smaller batch_size / more epochs"
            )
            log.warning(
                "only %d optimizer steps in this run (fewer than %d): the model will barely train; %s",
                self.schedule.total_steps,
                FEW_STEPS,
                hint,
            )
        log.info(
            "%s on %s: %d train / %d val clips, batch %d x %d accum x %d process(es)%s, %d steps/epoch, %d epochs%s",
            self.model_config.name,
            self.device,
            len(self.train_set),
            len(self.val_set),
            self.batch_size,
            self.grad_accum,
            self.world,
            f" (negatives from all {self.world}: {self.batch_size * self.world} per loss)"
            if self.gathers_negatives
            else "",
            self.steps_per_epoch,
            self.epochs,
            f" (resumed at epoch {self.epoch + 1}, step {self.step})" if resumed else "",
        )
        self._fill_caches()
        self._write_skipped()
        stopped = False
        while self.epoch < self.epochs and not stopped:
            stopped = self._train_epoch()
            if stopped:
                break
            metrics = self.validate()
            self._end_epoch(metrics)
        if self.tb is not None:
            self.tb.close()
        if self.world > 1:
            torch.distributed.barrier()
        return TrainResult(
            self.run_dir,
            self.best_epoch,
            self.best_metric,
            self.best_metrics,
            self.epoch,
            self.step,
            len(self.skipped),
            finished=self.epoch >= self.epochs,
            schedule=self.schedule,
        )

    def _train_epoch(self) -> bool:
        """One epoch (or its remainder after a resume). Returns True when stopped by ``stop_after_steps``."""
        cfg = self.cfg
        model = self.ddp or self.model
        self.model.train()
        for module in self.frozen:
            module.eval()
        self.train_set.set_epoch(self.epoch)
        sampler = training_sampler(cfg, self.train_set, self.rank, self.world)
        sampler.set_epoch(self.epoch, skip=self.batch_in_epoch * self.batch_size)
        loader = make_loader(
            self.train_set,
            self.model.backbone.text_preprocessor,
            self.batch_size,
            sampler,
            workers=cfg.workers,
            drop_last=True,
            pin_memory=self.device.type == "cuda",
            seed=cfg.seed * 1000 + self.epoch,
        )
        losses: list[float] = []
        t0, clips = time.perf_counter(), 0
        micro = self.batch_in_epoch
        it = progress(
            loader, desc=f"epoch {self.epoch + 1}/{self.epochs}", total=len(loader), unit="batch"
        )
        for batch in it:
            if micro >= self.micro_per_epoch:
                break
            self._record_failures("train", batch)
            group_start = micro - micro % self.grad_accum
            group_size = min(self.grad_accum, self.micro_per_epoch - group_start)
            counts = (
                gather_counts(len(batch), self.device) if self.ddp is not None else [len(batch)]
            )
            if self._trainable(counts):
                with (
                    model.no_sync()
                    if self.ddp is not None and (micro + 1 - group_start) < group_size
                    else nullcontext()
                ):
                    parts = self._micro_step(model, batch, group_size, counts)
                losses.append(parts["loss"])
                clips += len(batch)
            micro += 1
            if micro - group_start == group_size:
                self._optimizer_step()
                self.batch_in_epoch = micro
                if self.step % cfg.log_every == 0 and losses:
                    self._log_step(parts, clips / max(time.perf_counter() - t0, 1e-9))
                if cfg.save_every and self.step % cfg.save_every == 0:
                    self._save_last()
                if cfg.stop_after_steps is not None and self.step >= cfg.stop_after_steps:
                    self._save_last()
                    log.info(
                        "stopped after %d steps as asked (stop_after_steps); resume with the same command",
                        self.step,
                    )
                    return True
        elapsed = time.perf_counter() - t0
        self._epoch_train = {
            "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "clips_per_s": clips / elapsed if elapsed > 0 else float("nan"),
            "epoch_seconds": elapsed,
        }
        return False

    @property
    def gathers_negatives(self) -> bool:
        return self.ddp is not None and self.cfg.gather_negatives

    def _trainable(self, counts: list[int]) -> bool:
        """Whether this micro-batch is trained on. Every process decides alike (from all counts), because
        a process that skipped a step alone would leave the others waiting in DDP's all-reduce forever."""
        if self.gathers_negatives:
            return min(counts) >= 1 and sum(counts) >= 2
        return min(counts) >= 2

    def _micro_step(
        self, model, batch: Batch, group_size: int, counts: list[int]
    ) -> dict[str, float]:
        batch = batch.to(self.device)
        audio = (
            self.audio_cache.get(batch.indices.tolist(), self.device)
            if self.audio_cache is not None
            else batch.audio
        )
        text = self._frozen_text(batch) if self.text_cache is not None else batch.text
        exclude = same_caption_mask(batch.caption_keys, self.device)
        autocast = self._autocast()
        with autocast:
            out = model(audio, text, exclude, self.pair_mode, self.cfg.pair_negatives)
        loss = training_loss(
            self.objective,
            out,
            exclude,
            batch.caption_keys,
            counts if self.gathers_negatives else None,
        )
        if not torch.isfinite(loss.total):
            last = (
                f"{self.last_dir} (step {self._last_saved_step()})"
                if self.last_dir.is_dir()
                else "none saved yet"
            )
            raise TrainingDiverged(
                f"loss became {float(loss.total)} at epoch {self.epoch + 1}, step {self.step + 1} "
                f"(clips {', '.join(batch.clip_ids[:3])}, ...); stopped. Last good checkpoint: {last}. "
                f"Try a lower lr_fusion/lr_scratch or amp=false"
            )
        self.scaler.scale(loss.total / group_size).backward()
        return loss.parts

    def _optimizer_step(self) -> None:
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]], self.cfg.grad_clip
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    # -- frozen-encoder caches ----------------------------------------------------------------
    @torch.no_grad()
    def _frozen_text(self, batch: Batch) -> TokenFeatures:
        """Frozen text features: cached for stored captions; re-phrased ones (``recaption``) are new each epoch,
        so they are encoded per batch and not kept (a cache would grow with every epoch)."""
        if all(c in self.text_cache for c in batch.captions):
            return self.text_cache.get(batch.captions, self.device)
        bb = self.model.backbone
        mode = bb.training
        bb.eval()
        feats = bb.encode_text(batch.text)
        bb.train(mode)
        return feats

    @torch.no_grad()
    def _fill_caches(self) -> None:
        if self.audio_cache is None and self.text_cache is None:
            return
        bb = self.model.backbone
        bb_mode = bb.training
        bb.eval()
        for name, dataset in (("train", self.train_set), ("val", self.val_set)):
            if self.text_cache is not None:
                captions = sorted({r.caption for r in dataset.rows} - set(self.text_cache.items))
                for start in range(0, len(captions), self.cfg.val_batch_size):
                    chunk = captions[start : start + self.cfg.val_batch_size]
                    batch = {k: v.to(self.device) for k, v in bb.text_preprocessor(chunk).items()}
                    self.text_cache.put(chunk, bb.encode_text(batch))
            if self.audio_cache is not None:
                loader = make_loader(
                    dataset,
                    bb.text_preprocessor,
                    self.cfg.val_batch_size,
                    EpochSampler(len(dataset), 0, shuffle=False),
                    workers=self.cfg.workers,
                )
                cache = self.audio_cache if name == "train" else self._val_audio_cache()
                for batch in progress(
                    loader, desc=f"caching {name} audio features", total=len(loader)
                ):
                    for cid, _path, reason in batch.failures:
                        idx = next(i for i, r in enumerate(dataset.rows) if r.clip_id == cid)
                        dataset.failed[idx] = reason
                    if len(batch):
                        feats = bb.encode_audio(
                            {k: v.to(self.device) for k, v in batch.audio.items()}
                        )
                        cache.put(batch.indices.tolist(), feats)
                dataset.skip_audio = set(cache.items)
                for cid, path, reason in [
                    (dataset.rows[i].clip_id, dataset.rows[i].audio_path, r)
                    for i, r in dataset.failed.items()
                ]:
                    self._add_skipped(name, cid, path, reason)
        bb.train(bb_mode)

    def _val_audio_cache(self) -> FeatureCache:
        if not hasattr(self, "_val_cache"):
            self._val_cache = FeatureCache()
        return self._val_cache

    # -- validation ---------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        model = self.model
        was = model.training
        model.eval()
        bb = model.backbone
        loader = make_loader(
            self.val_set,
            bb.text_preprocessor,
            self.cfg.val_batch_size,
            EpochSampler(len(self.val_set), 0, shuffle=False),
            workers=self.cfg.workers,
        )
        a_emb, t_emb, caps = [], [], []
        keep = self.cfg.val_rerank_k > 0 and model.has_pair_scoring
        a_tok, t_tok = [], []
        autocast = self._autocast()
        val_cache = getattr(self, "_val_cache", None)
        for batch in loader:
            self._record_failures("val", batch)
            if not len(batch):
                continue
            batch = batch.to(self.device)
            with autocast:
                raw_a = (
                    val_cache.get(batch.indices.tolist(), self.device)
                    if val_cache is not None
                    else bb.encode_audio(batch.audio)
                )
                raw_t = (
                    self.text_cache.get(batch.captions, self.device)
                    if self.text_cache is not None
                    else bb.encode_text(batch.text)
                )
                at, tt = model.project_audio(raw_a), model.project_text(raw_t)
                a_emb.append(model.bi_embed(at, AUDIO)[0].float().cpu())
                t_emb.append(model.bi_embed(tt, TEXT)[0].float().cpu())
            caps.extend(batch.captions)
            if keep:
                a_tok.extend(
                    f.to("cpu", torch.float16) for f in at.unbind()
                )  # half the RAM; re-ranking only
                t_tok.extend(f.to("cpu", torch.float16) for f in tt.unbind())
        metrics = validation_metrics(
            model,
            torch.cat(a_emb),
            torch.cat(t_emb),
            caps,
            a_tok if keep else None,
            t_tok if keep else None,
            self.cfg.val_rerank_k,
        )
        model.train(was)
        return metrics

    def _select_value(self, metrics: dict[str, float]) -> float:
        key = self.cfg.select_metric
        if f"a2t_{key}" not in metrics:
            raise FsclapError(
                f"select_metric {key} is not a validation metric (use R@1, R@5, R@10 or mAP@10)"
            )
        return 0.5 * (metrics[f"a2t_{key}"] + metrics[f"t2a_{key}"])

    def _end_epoch(self, metrics: dict[str, float]) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        value = self._select_value(metrics)
        train = getattr(self, "_epoch_train", {})
        row = {
            "epoch": self.epoch,
            "step": self.step,
            **{k: round(v, 5) if isinstance(v, float) else v for k, v in train.items()},
            "lr_fusion": self._lr("fusion"),
            "temperature": round(1.0 / float(self.model.logit_scale().detach()), 5),
            **metrics,
            f"select_{self.cfg.select_metric}": round(value, 2),
        }
        self.epoch_rows.append(row)
        improved = self.best_metric is None or value > self.best_metric
        if improved:
            self.best_metric, self.best_epoch, self.best_metrics = value, self.epoch, metrics
        if self.is_main:
            if improved:
                self._save_best(metrics)
            self._save_last()
            self._write_tables()
            self._plot()
            if self.tb is not None:
                for k, v in metrics.items():
                    self.tb.add_scalar(f"val/{k}", v, self.step)
        bi = f"a2t R@1 {metrics['a2t_R@1']:.1f} mAP@10 {metrics['a2t_mAP@10']:.1f} | t2a R@1 {metrics['t2a_R@1']:.1f} mAP@10 {metrics['t2a_mAP@10']:.1f}"
        rr = (
            f" | rerank mAP@10 a2t {metrics['rerank_a2t_mAP@10']:.1f} t2a {metrics['rerank_t2a_mAP@10']:.1f}"
            if "rerank_a2t_mAP@10" in metrics
            else ""
        )
        log.info(
            "epoch %d/%d: loss %.4f, %.1f clips/s | val (N=%d) %s%s%s",
            self.epoch,
            self.epochs,
            train.get("train_loss", float("nan")),
            train.get("clips_per_s", float("nan")),
            metrics["n"],
            bi,
            rr,
            " (best)" if improved else "",
        )

    def _lr(self, kind: str) -> float:
        for g in self.optimizer.param_groups:
            if g["name"].startswith(kind):
                return float(g["lr"])
        return float("nan")

    def _log_step(self, parts: dict[str, float], clips_per_s: float) -> None:
        row = {
            "step": self.step,
            "epoch": self.epoch + 1,
            "lr_fusion": self._lr("fusion"),
            "lr_backbone": self._lr("backbone"),
            **{k: round(v, 5) for k, v in parts.items()},
            "clips_per_s": round(clips_per_s, 2),
        }
        self.step_rows.append(row)
        if self.tb is not None and self.is_main:
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, self.step)
        log.debug("step %d: %s", self.step, row)

    # -- bad input bookkeeping ----------------------------------------------------------------
    def _record_failures(self, split: str, batch: Batch) -> None:
        for cid, path, reason in batch.failures:
            self._add_skipped(split, cid, path, reason)

    def _add_skipped(self, split, cid, path, reason) -> None:
        if not any(s[0] == split and s[1] == cid for s in self.skipped):
            log.warning("skipping %s clip %s (%s): %s", split, cid, path, reason)
            self.skipped.append((split, cid, path, reason))
            if self.is_main:
                self._write_skipped()

    def _write_skipped(self) -> None:
        if not self.is_main:
            return
        with atomic_path(self.layout.skipped_csv) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["split", "clip_id", "audio_path", "reason"])
                w.writerows(self.skipped)

    # -- checkpoints --------------------------------------------------------------------------
    def _save_best(self, metrics: dict[str, float]) -> None:
        tmp = self.best_dir.with_name("best.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(
            self.model,
            tmp,
            extra={
                "epoch": self.epoch,
                "step": self.step,
                "metrics": metrics,
                "select_metric": self.cfg.select_metric,
                "select_value": self.best_metric,
            },
        )
        _swap_dir(tmp, self.best_dir)

    def _save_last(self) -> None:
        if not self.is_main:
            return
        tmp = self.last_dir.with_name("last.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(self.model, tmp)
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, tmp / "trainer.pt")
        np_state = np.random.get_state()
        write_json(
            RunDir.state_file(tmp),
            {
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "step": self.step,
                "best_metric": self.best_metric,
                "best_epoch": self.best_epoch,
                "best_metrics": self.best_metrics,
                "epoch_rows": self.epoch_rows,
                "step_rows": self.step_rows,
                "skipped": self.skipped,
                "config": self.cfg.model_dump(mode="json"),
                "schedule": self.schedule.to_json(),
                "data": self.data_fingerprint,
                "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "python_rng": _py_rng_to_json(random.getstate()),
            },
        )
        _swap_dir(tmp, self.last_dir)

    def _saved_schedule(self) -> Schedule | None:
        """The schedule of the run in ``run_dir`` when it will be resumed (same settings; checked in fit)."""
        if not self.cfg.resume:
            return None
        for folder in (self.last_dir, self.last_dir.with_name("last.old")):  # .old: killed mid-swap
            try:
                saved = json.loads(RunDir.state_file(folder).read_text()).get("schedule")
            except (OSError, ValueError):
                continue
            schedule = Schedule.from_json(saved) if saved else None
            if schedule is not None and (schedule.world, schedule.train_clips) == (
                self.world,
                len(self.train_set),
            ):
                return schedule
            return None  # another data set or process count: fit() refuses or the run restarts its plan
        return None

    def _last_saved_step(self) -> int | None:
        try:
            return json.loads(RunDir.state_file(self.last_dir).read_text())["step"]
        except (OSError, ValueError, KeyError):
            return None

    def _maybe_resume(self) -> bool:
        from safetensors.torch import load_model

        old = self.last_dir.with_name("last.old")
        if (
            not self.last_dir.is_dir() and old.is_dir()
        ):  # killed between the two renames of _swap_dir
            old.rename(self.last_dir)
        if not RunDir.state_file(self.last_dir).is_file():
            return False
        if not self.cfg.resume:
            raise FsclapError(
                f"{self.run_dir} already holds a run; use another --out (or resume=true to continue it)"
            )
        try:
            state = json.loads(RunDir.state_file(self.last_dir).read_text(encoding="utf-8"))
            saved = {k: v for k, v in state["config"].items() if k not in RUNTIME_KEYS}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FsclapError(
                f"cannot resume from {RunDir.state_file(self.last_dir)}: not a trainer state "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); start a new run with "
                "another --out"
            ) from None
        now = {k: v for k, v in self.cfg.model_dump(mode="json").items() if k not in RUNTIME_KEYS}
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if diff:
            raise FsclapError(
                f"{self.run_dir} holds a run with different settings ({', '.join(diff)}); "
                f"use a new --out, or the same settings to resume it"
            )
        changed = sorted(
            k
            for k, v in state.get("data", self.data_fingerprint).items()
            if self.data_fingerprint.get(k) != v
        )
        if changed:
            raise FsclapError(
                f"{self.run_dir} holds a run on different {' and '.join(changed)} data "
                f"(clips, paths or captions changed); use a new --out"
            )
        load_model(self.model, str(self.last_dir / "model.safetensors"), strict=True)
        try:
            trainer_state = load_tensors(self.last_dir / "trainer.pt")
        except UnsafeFile as exc:
            raise FsclapError(
                f"cannot resume from {self.last_dir / 'trainer.pt'}: not a plain trainer state "
                f"({exc}); start a new run with another --out"
            ) from None
        self.optimizer.load_state_dict(trainer_state["optimizer"])
        self.scheduler.load_state_dict(trainer_state["scheduler"])
        self.scaler.load_state_dict(trainer_state["scaler"])
        torch.set_rng_state(trainer_state["torch_rng"])
        if "cuda_rng" in trainer_state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(trainer_state["cuda_rng"])
        np_rng = state["numpy_rng"]
        np.random.set_state((np_rng[0], np.array(np_rng[1], dtype=np.uint32), *np_rng[2:]))
        random.setstate(_py_rng_from_json(state["python_rng"]))
        self.epoch, self.batch_in_epoch, self.step = (
            state["epoch"],
            state["batch_in_epoch"],
            state["step"],
        )
        self.best_metric, self.best_epoch, self.best_metrics = (
            state["best_metric"],
            state["best_epoch"],
            state["best_metrics"],
        )
        self.epoch_rows, self.step_rows = state["epoch_rows"], state["step_rows"]
        known = {(s[0], s[1]) for s in self.skipped}
        self.skipped += [tuple(s) for s in state.get("skipped", []) if (s[0], s[1]) not in known]
        return True

    # -- outputs ------------------------------------------------------------------------------
    def _open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception:  # noqa: BLE001 - tensorboard is optional; CSV + PNG are always written
            return
        self.tb = SummaryWriter(str(self.layout.tensorboard))

    def _write_tables(self) -> None:
        for path, rows in (
            (self.layout.metrics_csv, self.epoch_rows),
            (self.layout.train_log_csv, self.step_rows),
        ):
            if not rows:
                continue
            keys = list(dict.fromkeys(k for r in rows for k in r))
            with atomic_path(path) as tmp:
                with open(tmp, "w", newline="") as fh:
                    w = csv.DictWriter(fh, fieldnames=keys)
                    w.writeheader()
                    w.writerows(rows)

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        if self.step_rows:
            steps = [r["step"] for r in self.step_rows]
            for key in ("loss", "loss_bi", "loss_pair"):
                if key in self.step_rows[0]:
                    ax1.plot(steps, [r.get(key) for r in self.step_rows], label=key)
        ax1.set_xlabel("optimizer step")
        ax1.set_ylabel("training loss")
        if ax1.get_legend_handles_labels()[0]:  # no step logged yet (e.g. a one-step epoch)
            ax1.legend()
        epochs = [r["epoch"] for r in self.epoch_rows]
        for key, style in (
            ("a2t_mAP@10", "-"),
            ("t2a_mAP@10", "-"),
            ("a2t_R@1", "--"),
            ("t2a_R@1", "--"),
            ("rerank_a2t_mAP@10", ":"),
            ("rerank_t2a_mAP@10", ":"),
        ):
            if self.epoch_rows and key in self.epoch_rows[0]:
                ax2.plot(epochs, [r[key] for r in self.epoch_rows], style, marker="o", label=key)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("validation (%)")
        if ax2.get_legend_handles_labels()[0]:
            ax2.legend(fontsize=8)
        ax2.set_title(
            f"{self.model_config.name}: N={len(self.val_set)} val clips, best epoch {self.best_epoch}"
        )
        fig.tight_layout()
        with atomic_path(self.layout.curves) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
def _data_fingerprint(dataset: ClipDataset) -> str:
    """What the run was trained on: clip ids, audio paths, segment bounds and captions (not audio bytes)."""
    digest = hashlib.sha256()
    for row in dataset.rows:
        digest.update(
            f"{row.clip_id}\t{row.audio_path}\t{row.start_s}\t{row.end_s}\t{row.caption}\n".encode()
        )
    return digest.hexdigest()[:16]


def _cosine_with_warmup(warmup: int, total: int, min_ratio: float):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress_))

    return factor


def _swap_dir(new: Path, target: Path) -> None:
    """Replace ``target`` by ``new`` so that a killed process leaves either the old or the new folder."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _py_rng_to_json(state) -> list:
    return [state[0], list(state[1]), state[2]]


def _py_rng_from_json(data) -> tuple:
    return (data[0], tuple(data[1]), data[2])


def train(
    train_manifest: str | Path,
    val_manifest: str | Path,
    run_dir: str | Path,
    config: TrainConfig,
    settings=None,
) -> TrainResult:
    """Read the manifests and train (what ``fsclap train`` calls)."""
    train_m = ClipManifest.read(train_manifest, validate_levels=False)
    val_m = ClipManifest.read(val_manifest, validate_levels=False)
    if Path(train_manifest).resolve() == Path(val_manifest).resolve():
        if "split" not in train_m.frame.columns:
            raise FsclapError(
                f"--train and --val are the same manifest but it has no split column: {train_manifest}"
            )
        train_m, val_m = (
            train_m.split("train"),
            val_m.split("val"),
        )  # one corpus manifest with train/val/test rows
        for name, part in (("train", train_m), ("val", val_m)):
            if len(part) == 0:
                raise FsclapError(f"manifest {train_manifest} has no rows with split={name}")
    return Trainer(config, train_m, val_m, run_dir, settings=settings).fit()

"""GPU check in one call: FS-CLAP training speed and the paper models' real-time factors.

    .venv/bin/python benchmarks/gpu_check.py --json gpu.json          # full sizes, on cuda if present
    .venv/bin/python benchmarks/gpu_check.py --quick --device cpu     # tiny sizes (what the test runs)

Parts (each isolated: an error is printed as one line in its row and the rest still runs):

* ``train``: optimizer steps/s of the project's ``Trainer`` (its ``_micro_step`` + ``_optimizer_step``)
  on one fixed batch of generated clips, FS-CLAP with the LAION-CLAP-size backbone (HTSAT-tiny +
  RoBERTa-base via transformers' ``ClapModel``, random initialisation), float32 and bf16 autocast.
  Data loading is not timed (the batch is decoded once).
* ``ddp``: the same step wrapped in ``DistributedDataParallel`` as the trainer wraps it, in one process
  (NCCL on CUDA, gloo on the CPU; world size 1 through MASTER_ADDR/MASTER_PORT), with the global-batch
  negatives gathered across processes (``gather_negatives``); precision as the trainer picks it
  (``amp_dtype=auto``: bf16 on GPUs that support it, float32 on the CPU).
* ``demucs`` / ``paraformer`` / ``campplus`` / ``sensevoice``: real-time factor (processing seconds /
  audio seconds) of HTDemucs (``separate_in_chunks`` + ``DemucsBackend``), Paraformer-large ASR and
  CAM++ (``load_funasr_model``) and SenseVoiceSmall (``SenseVoiceTagger``) on a generated drama
  (``generate_dramas``). Full sizes are the released architectures with random weights, written in the
  released on-disk layouts (no model hub is needed); the second of two runs is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import math
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTS = ("train", "ddp", "demucs", "paraformer", "campplus", "sensevoice")
FUNASR_SR = 16000

# released architectures (config.yaml of the ModelScope releases, HTDemucs' release kwargs)
HTDEMUCS_FULL = dict(channels=48, depth=4, t_layers=5, bottom_channels=512, segment=7.8)
PARAFORMER_LARGE = {
    "encoder_conf": {
        "output_size": 512,
        "attention_heads": 4,
        "linear_units": 2048,
        "num_blocks": 50,
    },
    "decoder_conf": {
        "attention_heads": 4,
        "linear_units": 2048,
        "num_blocks": 16,
        "att_layer_num": 16,
    },
    "seaco_decoder_conf": {"attention_heads": 4, "linear_units": 1024, "num_blocks": 4},
    "predictor_conf": {"idim": 512},
    "model_conf": {"inner_dim": 512, "NO_BIAS": 8377},
}
PARAFORMER_VOCAB = 8404
CAMPPLUS_FULL = {
    "model_conf": {"embedding_size": 192, "growth_rate": 32, "bn_size": 4, "init_channels": 128}
}
SENSEVOICE_SMALL = {
    "encoder_conf": {
        "output_size": 512,
        "attention_heads": 4,
        "linear_units": 2048,
        "num_blocks": 50,
        "tp_blocks": 20,
    }
}
SENSEVOICE_VOCAB = 25055


@dataclass(frozen=True)
class Sizes:
    clap: str  # "tiny" | "laion"
    batch_size: int
    warmup: int
    steps: int
    seconds: float


QUICK = Sizes("tiny", batch_size=4, warmup=1, steps=2, seconds=8.0)
FULL = Sizes("laion", batch_size=96, warmup=3, steps=10, seconds=60.0)
TINY_HEAD = {"d_model": 32, "embed_dim": 16, "heads": 4, "dropout": 0.0}


@dataclass
class Row:
    part: str
    setting: str
    figure: float | None = None
    unit: str = ""
    error: str | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- inputs ----------------------------------------------------------------------------------


def drama_audio(work: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The mix of one generated drama episode (mono, 44.1 kHz) of about ``seconds``."""
    from fsclap.audio import load_audio
    from pipeline.synth.drama import generate_dramas

    result = generate_dramas(
        work / "dramas", dramas=1, episodes=1, seed=0, duration_s=max(seconds, 5.0), workers=0
    )
    mix = next((result.out_dir / "truth").glob("*/*/mix.flac"))
    return load_audio(mix)


def clip_manifest(work: Path, n: int):
    """``n`` generated voice-like clips of 2 s, each with its own caption, as a ClipManifest."""
    import pandas as pd

    from fsclap.manifest import ClipManifest
    from fsclap.testing.style_audio import write_voice_like

    folder = work / "clips"
    rows = []
    for i in range(n):
        path = write_voice_like(
            folder / f"c{i:03d}.wav",
            f0_hz=90.0 + 7.0 * i,
            seconds=2.0,
            syllables_per_s=2.0 + i % 5,
            seed=i,
        )
        rows.append({"clip_id": f"c{i:03d}", "audio_path": str(path), "caption": f"voice {i}"})
    table = work / "clips.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    return ClipManifest.read(table, validate_levels=False)


# --- (a) / (b) training -----------------------------------------------------------------------


def laion_size_model(sizes: Sizes, work: Path, seed: int = 0):
    """FS-CLAP (fsclap-laion) on a randomly initialised LAION-CLAP backbone: ``ClapConfig()``'s
    defaults are laion/clap-htsat-unfused's architecture; ``tiny`` is the test suite's tiny CLAP."""
    from transformers import AutoTokenizer, ClapConfig, ClapFeatureExtractor, ClapModel

    from fsclap.testing.tiny_models import tiny_clap_config, write_tiny_roberta_tokenizer
    from model.backbones.laion_clap import CLAP_FEATURE_EXTRACTOR, LaionClapBackbone
    from model.fsclap import FSCLAP
    from model.model_config import load_model_config

    folder = work / "roberta-tokenizer"
    if not (folder / "tokenizer.json").is_file():
        write_tiny_roberta_tokenizer(folder)  # token ids stay below any vocabulary size
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(seed)
    clap_config = ClapConfig() if sizes.clap == "laion" else tiny_clap_config(len(tokenizer))
    config = load_model_config("fsclap-laion", TINY_HEAD if sizes.clap == "tiny" else None)
    backbone = LaionClapBackbone(
        ClapModel(clap_config),
        tokenizer,
        ClapFeatureExtractor(**CLAP_FEATURE_EXTRACTOR),
        config.text_max_length,
    )
    return FSCLAP(config, backbone)


def make_trainer(sizes: Sizes, work: Path, device: torch.device, amp: str | None):
    """The project's Trainer on generated clips, holding a LAION-size model; ``amp`` None: float32."""
    from model.train_config import load_train_config
    from model.training import Trainer

    manifest = clip_manifest(work, sizes.batch_size)
    overrides = {
        "backbone": "laion-clap",
        "batch_size": sizes.batch_size,
        "grad_accum": 1,
        "epochs": 1,
        "device": str(device),
        "workers": 0,
        "recaption": 0.0,
        "amp": amp is not None,
        "amp_dtype": amp or "auto",
    }
    if device.type == "cpu":
        overrides["cpu_threads"] = torch.get_num_threads()
    return Trainer(
        load_train_config(None, overrides),
        manifest,
        manifest,
        work / "run",
        model=laion_size_model(sizes, work),
    )


def steps_per_second(trainer, sizes: Sizes) -> float:
    """Optimizer steps/s of the trainer's own step on one fixed batch (decoded once, not timed)."""
    from model.data import Collator
    from model.distributed import gather_counts

    data = trainer.train_set
    batch = Collator(data, trainer.model.backbone.text_preprocessor)(
        [data[i] for i in range(sizes.batch_size)]
    )
    if batch.failures:
        raise RuntimeError(f"clip failed to decode: {batch.failures[0]}")
    model = trainer.ddp or trainer.model
    trainer.model.train()

    def step() -> None:
        counts = gather_counts(len(batch), trainer.device) if trainer.ddp else [len(batch)]
        trainer._micro_step(model, batch, 1, counts)
        trainer._optimizer_step()

    for _ in range(sizes.warmup):
        step()
    _sync(trainer.device)
    start = time.perf_counter()
    for _ in range(sizes.steps):
        step()
    _sync(trainer.device)
    return sizes.steps / (time.perf_counter() - start)


def _precision(trainer) -> str:
    return {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[
        trainer.amp_dtype
    ]


def train_rows(sizes: Sizes, work: Path, device: torch.device) -> list[Row]:
    rows = []
    for amp in (None, "bf16"):
        label = "fp32" if amp is None else "bf16 autocast"
        setting = f"{label}, {sizes.clap} backbone, batch {sizes.batch_size}"
        rows.append(
            _isolated(
                "train",
                setting,
                "steps/s",
                lambda amp=amp: steps_per_second(make_trainer(sizes, work, device, amp), sizes),
            )
        )
        _free_memory()
    return rows


@contextlib.contextmanager
def one_process_group(device: torch.device):
    """A world-size-1 process group (NCCL on CUDA, gloo on the CPU) on a free loopback port;
    the environment is restored afterwards."""
    import torch.distributed as dist

    from fsclap.testing.media import closed_port

    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(closed_port()),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, rank=0, world_size=1)
        try:
            yield backend
        finally:
            dist.destroy_process_group()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ddp_steps(sizes: Sizes, work: Path, device: torch.device) -> tuple[float, str]:
    from torch.nn.parallel import DistributedDataParallel

    with one_process_group(device) as backend:
        trainer = make_trainer(sizes, work, device, "auto")
        # wrapped as Trainer.__init__ wraps the model when torchrun starts several processes
        trainer.ddp = DistributedDataParallel(
            trainer.model,
            device_ids=[trainer.device.index or 0] if trainer.device.type == "cuda" else None,
            find_unused_parameters=True,
        )
        rate = steps_per_second(trainer, sizes)
    return rate, f"{backend} world 1, {_precision(trainer)}, batch {sizes.batch_size}"


# --- (c) real-time factors --------------------------------------------------------------------


def _rebuild_funasr_dir(root: Path, update: dict, tune=None, vocab: Callable | None = None):
    """Resize a FunASR model dir written by the tiny writers: merge ``update`` into its config.yaml
    sections, let ``vocab(root)`` replace its token files, and rebuild the weights through FunASR."""
    import yaml

    from fsclap.testing.tiny_models import write_funasr_dir

    config = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
    for section, values in update.items():
        config[section] = {**config.get(section, {}), **values}
    if vocab is not None:
        vocab(root)
    meta = json.loads((root / "configuration.json").read_text(encoding="utf-8"))
    return write_funasr_dir(
        root, config, meta["file_path_metas"], meta["model_name_in_hub"]["ms"], 0, tune
    )


def _paraformer_vocab(root: Path) -> None:
    chars = [chr(0x4E00 + i) for i in range(PARAFORMER_VOCAB - 4)]
    tokens = ["<blank>", "<s>", "</s>", *chars, "<unk>"]
    (root / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    (root / "seg_dict").write_text("".join(f"{c} {c}\n" for c in chars), encoding="utf-8")


def _sensevoice_vocab(root: Path) -> None:
    """A SentencePiece model of SenseVoiceSmall's size (one piece per character + the rich tags)."""
    import sentencepiece as spm

    from pipeline.emotion import DEFAULT_BPE, all_tags

    chars = [chr(0x4E00 + i) for i in range(SENSEVOICE_VOCAB - len(all_tags()) - 3)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter("".join(chars[i : i + 64]) for i in range(0, len(chars), 64)),
        model_writer=model,
        vocab_size=SENSEVOICE_VOCAB,
        model_type="char",
        character_coverage=1.0,
        user_defined_symbols=all_tags(),
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (root / DEFAULT_BPE).write_bytes(model.getvalue())


def _cif_fires(model) -> None:
    # as the tiny writer does: CIF weights near 0.5 per frame, so the decoder sees tokens to decode
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(0.0)
        model.predictor.cif_output2.bias.fill_(0.0)


def model_dir(name: str, work: Path, full: bool) -> Path:
    """A random-weight model of ``name`` in its released layout (tiny, or the released size)."""
    from fsclap.testing import tiny_models as tm

    root = work / "models" / name
    if name == "demucs":
        return tm.write_htdemucs_repo(root, **(HTDEMUCS_FULL if full else {}))
    if name == "paraformer":
        tm.write_funasr_paraformer_dir(root, d_model=512 if full else 32)
        return (
            _rebuild_funasr_dir(root, PARAFORMER_LARGE, _cif_fires, _paraformer_vocab)
            if full
            else root
        )
    if name == "campplus":
        tm.write_funasr_campplus_dir(root)
        return _rebuild_funasr_dir(root, CAMPPLUS_FULL) if full else root
    if name == "sensevoice":
        tm.write_sensevoice_small_dir(root, d_model=512 if full else 32)
        return (
            _rebuild_funasr_dir(root, SENSEVOICE_SMALL, vocab=_sensevoice_vocab) if full else root
        )
    raise ValueError(name)


def _pieces(audio: np.ndarray, sr: int, seconds: float) -> list[np.ndarray]:
    """Consecutive pieces of ``seconds`` (the last one may be shorter, at least 1 s)."""
    n = int(seconds * sr)
    return [audio[i : i + n] for i in range(0, len(audio), n) if len(audio[i : i + n]) >= sr]


def timed_twice(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of the second of two runs (the first loads kernels and warms caches)."""
    fn()
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def demucs_runner(repo: Path, work: Path, audio: np.ndarray, sr: int, device: torch.device):
    from fsclap.audio import write_audio
    from pipeline.separate import DemucsBackend, SeparateConfig, separate_in_chunks

    source = write_audio(work / "drama_stereo.wav", np.stack([audio, audio]), sr)
    config = SeparateConfig(method="demucs", model="htdemucs")
    backend = DemucsBackend(config, repo, str(device), seed=0)
    backend.load()
    mean, std = float(audio.mean()), float(audio.std()) + 1e-8
    return lambda: separate_in_chunks(
        source,
        {"vocals": work / "vocals.flac"},
        lambda block: backend(block, mean, std),
        config.chunk_s,
        config.overlap_s,
        align=backend.stride_frames(),
    )


def funasr_runner(name: str, folder: Path, audio: np.ndarray, device: torch.device):
    from pipeline.diarize.funasr_backend import load_funasr_model, quiet_funasr
    from pipeline.emotion import SenseVoiceTagger

    if name == "sensevoice":
        tagger = SenseVoiceTagger(folder, device=str(device))
        clips = _pieces(audio, FUNASR_SR, 5.0)
        return lambda: tagger.tag(clips)
    model = load_funasr_model(name, folder, str(device))
    inputs = [audio] if name == "paraformer" else _pieces(audio, FUNASR_SR, 3.0)

    def run() -> None:
        with quiet_funasr():
            for clip in inputs:  # CAM++ embeds clips one at a time, as the diarizer does
                model.generate(input=clip, disable_pbar=True)

    return run


RTF_SETTINGS = {
    "demucs": "HTDemucs {size}, 44.1 kHz stereo, 60 s chunks",
    "paraformer": "SeACo-Paraformer {size}, whole track, 16 kHz",
    "campplus": "CAM++ {size}, 3 s clips, one at a time",
    "sensevoice": "SenseVoiceSmall {size}, 5 s clips, batch 16",
}


def rtf_row(name: str, work: Path, audio: tuple[np.ndarray, int], device, full: bool) -> Row:
    setting = RTF_SETTINGS[name].format(size="full size" if full else "tiny")

    def run() -> float:
        from fsclap.audio import resample

        wave, sr = audio
        with contextlib.redirect_stdout(io.StringIO()):  # FunASR prints every placeholder key
            folder = model_dir(name, work, full)
        if name == "demucs":
            fn = demucs_runner(folder, work, wave, sr, device)
        else:
            fn = funasr_runner(name, folder, resample(wave, sr, FUNASR_SR), device)
        return timed_twice(fn, device) / (len(wave) / sr)

    row = _isolated(name, setting, "RTF", run)
    _free_memory()
    return row


# --- running and reporting --------------------------------------------------------------------


def _isolated(part: str, setting: str, unit: str, fn: Callable[[], object]) -> Row:
    """``fn()``: the figure, or (figure, a more precise setting)."""
    try:
        figure = fn()
        if isinstance(figure, tuple):
            figure, setting = figure
        figure = float(figure)
        if not math.isfinite(figure):
            raise ValueError(f"not a finite figure: {figure}")
        return Row(part, setting, figure, unit)
    except Exception as exc:  # noqa: BLE001 - one part's failure is reported in its row
        if os.environ.get("FSCLAP_GPU_CHECK_TRACEBACK"):
            traceback.print_exc()
        return Row(part, setting, None, unit, _one_line(exc))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) if torch.cuda.is_available() else "no CUDA device"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run(
    quick: bool = False,
    device: str | None = None,
    seconds: float | None = None,
    batch_size: int | None = None,
    parts: tuple[str, ...] = PARTS,
    work: Path | None = None,
) -> dict:
    """Every part; returns ``{"device", "device_name", "torch", "mode", "rows": [...]}``."""
    sizes = QUICK if quick else FULL
    if seconds is not None:
        sizes = Sizes(sizes.clap, sizes.batch_size, sizes.warmup, sizes.steps, seconds)
    if batch_size is not None:
        sizes = Sizes(sizes.clap, batch_size, sizes.warmup, sizes.steps, sizes.seconds)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", 0)
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-check-")))
        rows: list[Row] = []
        if "train" in parts:
            rows += train_rows(sizes, work / "train", dev)
        if "ddp" in parts:
            backend = "nccl" if dev.type == "cuda" else "gloo"
            setting = f"{backend} world 1, batch {sizes.batch_size}"
            rows.append(
                _isolated("ddp", setting, "steps/s", lambda: ddp_steps(sizes, work / "ddp", dev))
            )
            _free_memory()
        rtf_parts = [p for p in parts if p in RTF_SETTINGS]
        if rtf_parts:
            try:
                audio = drama_audio(work, sizes.seconds)
            except Exception as exc:  # noqa: BLE001 - no drama: every RTF row says why
                rows += [Row(p, "generated drama", None, "RTF", _one_line(exc)) for p in rtf_parts]
            else:
                for name in rtf_parts:
                    rows.append(rtf_row(name, work, audio, dev, full=not quick))
    return {
        "device": str(dev),
        "device_name": device_name(dev),
        "torch": torch.__version__,
        "mode": "quick" if quick else "full",
        "audio_seconds": sizes.seconds,
        "rows": [asdict(r) for r in rows],
    }


def table(results: dict) -> str:
    lines = [
        f"device: {results['device_name']} ({results['device']}), torch {results['torch']}, "
        f"{results['mode']} sizes, {results['audio_seconds']:g} s of drama audio",
        "",
        "| part | setting | figure | unit |",
        "|---|---|---|---|",
    ]
    for row in results["rows"]:
        figure = f"error: {row['error']}" if row["error"] else f"{row['figure']:.4g}"
        lines.append(
            f"| {row['part']} | {row['setting']} | {figure.replace('|', '/')} | {row['unit']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU is fine)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--seconds", type=float, default=None, help="drama audio for the RTFs")
    parser.add_argument("--batch-size", type=int, default=None, help="training batch (full: 96)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"subset of {','.join(PARTS)}")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    parts = tuple(p.strip() for p in args.parts.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})")
    results = run(args.quick, args.device, args.seconds, args.batch_size, parts)
    print(table(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

"""Real-time factor and peak memory of the corpus builder's extract and separate stages.

Generates a long test episode (ffmpeg lavfi: a small test picture + a tone/noise sound track,
AAC in MP4) and runs the real stages on it:

* extract to 44.1 kHz stereo (Demucs input) and 16 kHz mono (offline profile) on the long episode;
* separate with a tiny random HTDemucs (the tests' model) on a short and on the long episode;
* separate with a full-size random HTDemucs (``write_htdemucs_repo(channels=48, t_layers=5)``,
  7.8-s segments as the released ``htdemucs``) on a short excerpt: on CPU a full-size pass over
  60 minutes takes hours, so its RTF is measured on ``--full-minutes`` only.

Each measurement runs in a fresh child process so that its peak resident memory (``ru_maxrss``)
is its own; the Python-heap peak (``tracemalloc``) is printed for extract. Memory is bounded if
the long run's peak matches the short run's. Random weights cost the same time as trained ones.

    .venv/bin/python benchmarks/extract_separate.py                  # 60-min episode (tens of minutes on 2 cores)
    .venv/bin/python benchmarks/extract_separate.py --minutes 5      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_long_episode(path: Path, minutes: float) -> Path:
    """An MP4 of ``minutes`` with a 160x120 test picture at 5 fps and a stereo tone+noise track."""
    if path.exists():
        return path
    seconds = minutes * 60
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=160x120:rate=5:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=220:sample_rate=44100:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"anoisesrc=color=pink:amplitude=0.05:r=44100:d={seconds}",
            "-filter_complex",
            "[1:a][2:a]amix=inputs=2:normalize=0,aformat=channel_layouts=stereo[a]",
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            str(path),
        ],
        check=True,
    )
    return path


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssSampler:
    """Samples this process's resident memory (VmRSS) every ``every_s`` seconds in a thread."""

    def __init__(self, every_s: float = 2.0):
        import threading

        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.perf_counter()

    def _run(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/status") as status:
                kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            self.samples.append((time.perf_counter() - self._start, kib / 1024.0))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# --- child processes ------------------------------------------------------------------------


def child_extract(media: Path, data_root: Path, rate: int, channels: int) -> dict:
    import tracemalloc

    from pipeline.acquire import Acquire
    from pipeline.extract import Extract
    from pipeline.sources import episode_id_for
    from pipeline.stage import StageContext
    from pipeline.tables import Episode

    context = StageContext(data_root=data_root)
    key = f"file:{media}"
    episode = Episode(
        episode_id=episode_id_for("bench", key),
        drama_id="bench",
        source_url=str(media),
        source_key=key,
        source_kind="file",
    )
    episode = Acquire({"local_files": "reference"}, context=context).run(episode)
    stage = Extract({"sample_rate": rate, "channels": channels}, context=context)
    rss_before = rss_mib()
    tracemalloc.start()
    start = time.perf_counter()
    done = stage.run(episode)
    seconds = time.perf_counter() - start
    _, heap_peak = tracemalloc.get_traced_memory()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {
        "audio_s": done.duration_s,
        "wall_s": seconds,
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_mib(),
        "python_heap_peak_mib": heap_peak / 2**20,
        "ffmpeg_peak_mib": children,
        "audio_path": str(context.abs(done.audio_path)),
        "audio_sha256": done.audio_sha256,
    }


def child_separate(
    wav: Path, repo: Path, data_root: Path, chunk_s: float, overlap_s: float
) -> dict:
    import torch

    from fsclap.audio import audio_stats
    from fsclap.io import sha256_file
    from pipeline.separate import Separate
    from pipeline.stage import StageContext
    from pipeline.tables import Episode

    context = StageContext(
        data_root=data_root, device="cuda" if torch.cuda.is_available() else "cpu"
    )
    stats = audio_stats(wav)
    episode = Episode(
        episode_id="bench-sep",
        drama_id="bench",
        source_url="-",
        source_key="-",
        audio_path=str(wav),
        audio_sha256=sha256_file(wav),
        sample_rate=stats["sample_rate"],
        channels=stats["channels"],
        duration_s=stats["duration_s"],
        mono_mean=stats["mono_mean"],
        mono_std=stats["mono_std"],
    )
    stage = Separate(
        {"method": "demucs", "chunk_s": chunk_s, "overlap_s": overlap_s},
        context=context,
        model_path=repo,
    )
    stage.ensure_setup()
    params = sum(p.numel() for p in stage.backend.model.parameters())
    rss_before = rss_mib()
    start = time.perf_counter()
    with RssSampler() as sampler:
        stage.run(episode)
    seconds = time.perf_counter() - start
    return {
        "audio_s": stats["duration_s"],
        "wall_s": seconds,
        "rss_before_mib": rss_before,
        "rss_peak_mib": rss_mib(),
        "params_m": params / 1e6,
        "device": context.device,
        "threads": torch.get_num_threads(),
        "rss_samples": sampler.samples,
    }


def run_child(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cut_wav(source: Path, target: Path, seconds: float) -> Path:
    import soundfile as sf

    if not target.exists():
        with sf.SoundFile(str(source)) as f:
            data = f.read(int(seconds * f.samplerate), dtype="int16", always_2d=True)
            sf.write(str(target), data, f.samplerate, subtype="PCM_16")
    return target


def plot_memory(runs: dict[str, dict], path: Path) -> None:
    """Resident memory over the run, x = fraction of the episode's wall time (flat = bounded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, run in runs.items():
        samples = run.get("rss_samples") or []
        if not samples:
            continue
        total = max(samples[-1][0], 1e-9)
        ax.plot(
            [t / total for t, _ in samples],
            [m for _, m in samples],
            label=f"{name}: {run['audio_s'] / 60:.1f} min audio, {run['params_m']:.2f} M params",
        )
    ax.set_xlabel("progress through the separation (fraction of wall time)")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("separate stage: memory stays flat with episode length (60-s chunks)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"memory plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0, help="Length of the long episode.")
    parser.add_argument(
        "--short-minutes", type=float, default=3.0, help="Excerpt for the tiny model's short run."
    )
    parser.add_argument(
        "--full-minutes", type=float, default=2.0, help="Excerpt for the full-size model."
    )
    parser.add_argument("--chunk-s", type=float, default=60.0)
    parser.add_argument("--overlap-s", type=float, default=5.0)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fsclap-bench" / "extract_separate",
    )
    parser.add_argument(
        "--parts",
        default="extract,short,full,long",
        help="Comma-separated subset of: extract, short (tiny model), full (full-size model), long (tiny, whole episode).",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        kind, *rest = args.child
        if kind == "extract":
            result = child_extract(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]))
        else:
            result = child_separate(
                Path(rest[0]), Path(rest[1]), Path(rest[2]), float(rest[3]), float(rest[4])
            )
        print(json.dumps(result))
        return

    from fsclap.testing.tiny_models import write_htdemucs_repo

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start (other work shares the CPUs)"
    )
    start = time.perf_counter()
    media = make_long_episode(work / f"episode_{args.minutes:g}min.mp4", args.minutes)
    print(
        f"generated {media.name} ({media.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s"
    )

    rows = []

    def report(label: str, r: dict) -> None:
        rtf = r["wall_s"] / r["audio_s"]
        extra = (
            f"  ffmpeg peak {r['ffmpeg_peak_mib']:.0f} MiB, python heap peak {r['python_heap_peak_mib']:.1f} MiB"
            if "ffmpeg_peak_mib" in r
            else ""
        )
        extra += (
            f"  ({r['params_m']:.2f} M params, {r['device']}, {r['threads']} threads)"
            if "params_m" in r
            else ""
        )
        line = (
            f"{label:<44} audio {r['audio_s'] / 60:6.1f} min  wall {r['wall_s']:7.1f} s  RTF {rtf:6.3f}  "
            f"peak RSS {r['rss_peak_mib']:6.0f} MiB (after setup {r['rss_before_mib']:.0f}){extra}"
        )
        print(line, flush=True)
        rows.append(line)

    parts = set(args.parts.split(","))
    runs: dict[str, dict] = {}
    long_wav_path = work / "data_44k" / "audio" / "bench"
    if "extract" in parts or not long_wav_path.is_dir():
        stereo = run_child("extract", str(media), str(work / "data_44k"), "44100", "2")
        report("extract -> 44.1 kHz stereo WAV (demucs input)", stereo)
        mono = run_child("extract", str(media), str(work / "data_16k"), "16000", "1")
        report("extract -> 16 kHz mono WAV (offline profile)", mono)
    long_wav = next(long_wav_path.glob("*.wav"))
    short_wav = cut_wav(
        long_wav, work / f"excerpt_{args.short_minutes:g}min.wav", args.short_minutes * 60
    )
    full_wav = cut_wav(
        long_wav, work / f"excerpt_{args.full_minutes:g}min.wav", args.full_minutes * 60
    )
    tiny = write_htdemucs_repo(work / "repo_tiny")
    full = write_htdemucs_repo(work / "repo_full", channels=48, t_layers=5, segment=7.8)
    chunk = [str(args.chunk_s), str(args.overlap_s)]

    if "short" in parts:
        runs["short"] = run_child(
            "separate", str(short_wav), str(tiny), str(work / "sep_short"), *chunk
        )
        report(f"separate tiny HTDemucs, {args.short_minutes:g}-min excerpt", runs["short"])
    if "full" in parts:
        runs["full"] = run_child(
            "separate", str(full_wav), str(full), str(work / "sep_full"), *chunk
        )
        report(f"separate full-size HTDemucs, {args.full_minutes:g}-min excerpt", runs["full"])
    if "long" in parts:
        runs["long"] = run_child(
            "separate", str(long_wav), str(tiny), str(work / "sep_long"), *chunk
        )
        report(f"separate tiny HTDemucs, {args.minutes:g}-min episode", runs["long"])
    if runs:
        plot_memory(runs, work / "separate_memory.png")
    (work / "results.txt").write_text("\n".join(rows) + "\n")
    print(f"figures also in {work / 'results.txt'}")


if __name__ == "__main__":
    main()

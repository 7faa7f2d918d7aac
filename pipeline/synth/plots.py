"""A picture of a generated episode: mix spectrogram above, ground-truth speaker turns below."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fsclap.audio import load_audio
from fsclap.io import atomic_path


def plot_episode(
    out_dir: str | Path, info: dict, png: str | Path, seconds: float | None = None
) -> Path:
    """Spectrogram of the episode's mix (0-8 kHz, dB) with each line's GT span drawn per speaker lane.

    ``seconds`` limits the plot to the episode's first seconds (speech detail stays readable).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import stft

    out_dir = Path(out_dir)
    end = min(seconds or info["duration_s"], info["duration_s"])
    mix, sr = load_audio(out_dir / info["stems"]["mix"], end_s=end)
    speech, _ = load_audio(out_dir / info["stems"]["speech"], end_s=end)
    freqs, times, spec = stft(mix, fs=sr, nperseg=1024, noverlap=768)
    db = 20 * np.log10(np.abs(spec) + 1e-6)
    keep = freqs <= 8000
    speakers = [s["speaker_id"] for s in info["speakers"]]
    fig, (ax_spec, ax_env, ax_gt) = plt.subplots(
        3, 1, figsize=(14, 7.5), sharex=True, gridspec_kw={"height_ratios": [4, 1.2, 1.2]}
    )
    ax_spec.pcolormesh(
        times,
        freqs[keep] / 1000,
        db[keep],
        shading="auto",
        cmap="magma",
        vmin=db[keep].max() - 80,
        vmax=db[keep].max(),
    )
    ax_spec.set_ylabel("kHz")
    ax_spec.set_title(
        f"{info['episode_id']}: mix spectrogram (speech-to-music {info['speech_to_music_db']:.0f} dB, "
        f"speech-to-noise {info['speech_to_noise_db']:.0f} dB)"
    )
    hop = int(0.02 * sr)
    frames = (len(mix) // hop) * hop
    t_env = np.arange(frames // hop) * hop / sr
    for signal, label in ((mix, "mix"), (speech, "speech stem")):
        level = 10 * np.log10(np.mean(signal[:frames].reshape(-1, hop) ** 2, axis=1) + 1e-10)
        ax_env.plot(t_env, level, lw=0.8, label=label)
    ax_env.set_ylim(-80, 0)
    ax_env.set_ylabel("dBFS")
    ax_env.legend(loc="upper right", fontsize=8)
    colours = plt.get_cmap("tab10")
    for line in info["lines"]:
        if line["start_s"] >= end:
            continue
        lane = speakers.index(line["speaker_id"])
        ax_gt.barh(
            lane,
            min(line["end_s"], end) - line["start_s"],
            left=line["start_s"],
            height=0.7,
            color=colours(lane),
            edgecolor="black",
            lw=0.5,
        )
        ax_spec.axvline(line["start_s"], color=colours(lane), lw=0.8, ls="--")
    ax_gt.set_yticks(range(len(speakers)))
    ax_gt.set_yticklabels(
        [f"{s} ({info['speakers'][i]['gender'][0]})" for i, s in enumerate(speakers)], fontsize=8
    )
    ax_gt.set_xlabel("seconds")
    ax_gt.set_xlim(0, end)
    ax_gt.set_title("ground truth turns", fontsize=9)
    fig.tight_layout()
    png = Path(png)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return png

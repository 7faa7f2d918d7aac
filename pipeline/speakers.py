"""Speaker embeddings (one vector per clip) and drama-level speaker identity.

Embedders (16 kHz mono float32 in, one L2-comparable vector per clip out):

* :class:`ResemblyzerEmbedder` — offline profile; resemblyzer's GE2E d-vector (256-d), weights ship
  in its wheel.
* :class:`CampplusEmbedder` — paper profile; FunASR's CAM++ (192-d) from a local model dir, run
  through FunASR's own inference code (the same model the diarizer clusters with).

:func:`link_speakers` turns per-episode speaker labels into drama-level speaker ids: each
(episode, label) is summarised by the centroid of its clips' unit embeddings, and centroids are
merged by average-linkage agglomerative clustering on cosine similarity, stopping at a
threshold. Two labels of the same episode are never merged by default (the diarizer already
decided they are different people), so one actor across 50 episodes becomes one speaker while
two actors of one scene stay apart. :func:`speaker_purity` scores such ids against known speakers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from fsclap.offline_models import load_resemblyzer

EMBEDDING_SAMPLE_RATE = 16000

# Cosine threshold between speaker centroids for linking them across episodes, per embedding model.
# campplus: FunASR's own ClusterBackend merges two speaker centres of one recording at cos ≥ 0.78
# (merge_thr); the same rule is used across episodes (not measurable here: no CAM++ weights).
# resemblyzer: measured by benchmarks/diarize_consistency.py on 3 generated dramas × 4 episodes
# (10 speakers): the adjusted Rand index of drama-level ids vs the true speakers is flat at 0.70
# for 0.55-0.70 and falls above (0.61 at 0.80, 0.39 at 0.90); 0.70 is the top of the plateau.
LINK_THRESHOLDS: dict[str, float] = {
    "campplus": 0.78,
    "resemblyzer": 0.70,
}


class SpeakerEmbedder(Protocol):
    name: str
    dim: int

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``(len(clips), dim)`` float32 embeddings of 16 kHz mono clips."""


class ResemblyzerEmbedder:
    """resemblyzer's VoiceEncoder: the d-vector of a clip is the mean of its 1.6 s partial
    embeddings (resemblyzer's ``embed_utterance``), after its volume normalisation."""

    name = "resemblyzer"
    dim = 256

    def __init__(self, device: str = "cpu"):
        self.encoder = load_resemblyzer("cpu" if str(device).startswith("cpu") else device)

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        from resemblyzer.audio import normalize_volume

        out = np.zeros((len(clips), self.dim), dtype=np.float32)
        for i, clip in enumerate(clips):
            wav = np.asarray(clip, dtype=np.float32)
            if len(wav) < EMBEDDING_SAMPLE_RATE // 10 or not np.abs(wav).max() > 1e-5:
                continue  # no usable signal: a zero vector, scored invalid_embedding downstream
            out[i] = self.encoder.embed_utterance(normalize_volume(wav, -30, increase_only=True))
        return out

    def embed_windows(
        self, audio: np.ndarray, win_s: float, hop_s: float, regions: Sequence[tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of sliding windows over speech ``regions`` (seconds) of a 16 kHz track.

        Returns ``(embeddings (n, dim), spans (n, 2) seconds)``. The mel spectrogram of each region
        is computed once and sliced; windows are batched through the encoder. A region shorter
        than one window gets a single window covering it."""
        import torch
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram
        from resemblyzer.hparams import mel_window_step

        frames_per_s = 1000.0 / mel_window_step
        win = max(int(round(win_s * frames_per_s)), 1)
        hop = max(int(round(hop_s * frames_per_s)), 1)
        batches: dict[int, list[np.ndarray]] = {}
        spans: dict[int, list[tuple[float, float]]] = {}
        for start_s, end_s in regions:
            a, b = int(start_s * EMBEDDING_SAMPLE_RATE), int(end_s * EMBEDDING_SAMPLE_RATE)
            wav = audio[a:b].astype(np.float32)
            if (
                len(wav) < EMBEDDING_SAMPLE_RATE * mel_window_step / 1000 * 2
                or not np.abs(wav).max() > 1e-5
            ):
                continue
            wav = normalize_volume(wav, -30, increase_only=True)
            mel = wav_to_mel_spectrogram(wav)
            n = len(mel)
            starts = list(range(0, max(n - win, 0) + 1, hop))
            if n > win and starts[-1] + win < n:
                starts.append(n - win)  # cover the tail
            for s in starts:
                piece = mel[s : s + win]
                batches.setdefault(len(piece), []).append(piece)
                spans.setdefault(len(piece), []).append(
                    (start_s + s / frames_per_s, start_s + (s + len(piece)) / frames_per_s)
                )
        all_emb, all_spans = [], []
        device = next(self.encoder.parameters()).device
        with torch.no_grad():
            for length, pieces in batches.items():
                for k in range(0, len(pieces), 256):
                    chunk = torch.from_numpy(np.stack(pieces[k : k + 256])).to(device)
                    all_emb.append(self.encoder(chunk).cpu().numpy())
                all_spans.extend(spans[length])
        if not all_emb:
            return np.zeros((0, self.dim), dtype=np.float32), np.zeros((0, 2))
        emb = np.concatenate(all_emb).astype(np.float32)
        spans_arr = np.asarray(all_spans, dtype=np.float64)
        order = np.argsort(spans_arr[:, 0], kind="stable")
        return emb[order], spans_arr[order]

    def embed_spans(
        self, audio: np.ndarray, spans: np.ndarray, semitones: float = 0.0
    ) -> np.ndarray:
        """Embeddings of the ``spans`` (seconds) of a 16 kHz track, each first shifted by ``semitones``
        the way a restyled recording is: resampled, so pitch and formants move together (and the
        tempo with them). Batched like :meth:`embed_windows`."""
        import soxr
        import torch
        from resemblyzer.audio import normalize_volume, wav_to_mel_spectrogram

        ratio = 2.0 ** (semitones / 12.0)
        batches: dict[int, list[tuple[int, np.ndarray]]] = {}
        for i, (start_s, end_s) in enumerate(np.asarray(spans, dtype=np.float64)):
            wav = np.asarray(
                audio[int(start_s * EMBEDDING_SAMPLE_RATE) : int(end_s * EMBEDDING_SAMPLE_RATE)],
                dtype=np.float32,
            )
            if len(wav) < EMBEDDING_SAMPLE_RATE // 10 or not np.abs(wav).max() > 1e-5:
                continue
            if semitones:
                wav = soxr.resample(
                    wav, EMBEDDING_SAMPLE_RATE, EMBEDDING_SAMPLE_RATE / ratio
                ).astype(np.float32)
            mel = wav_to_mel_spectrogram(normalize_volume(wav, -30, increase_only=True))
            batches.setdefault(len(mel), []).append((i, mel))
        out = np.zeros((len(spans), self.dim), dtype=np.float32)
        device = next(self.encoder.parameters()).device
        with torch.no_grad():
            for items in batches.values():
                for k in range(0, len(items), 256):
                    rows = items[k : k + 256]
                    chunk = torch.from_numpy(np.stack([m for _, m in rows])).to(device)
                    out[[i for i, _ in rows]] = self.encoder(chunk).cpu().numpy()
        return out


class CampplusEmbedder:
    """CAM++ through FunASR: ``AutoModel.inference(clip, model=spk_model)``, one clip at a time
    (batched CAM++ zero-pads shorter clips, which would bias their statistics pooling)."""

    name = "campplus"

    def __init__(self, automodel):
        self.automodel = automodel
        self.dim = int(automodel.spk_kwargs.get("model_conf", {}).get("embedding_size", 192))

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(clips), self.dim), dtype=np.float32)
        am = self.automodel
        for i, clip in enumerate(clips):
            clip = np.asarray(clip, dtype=np.float32)
            if len(clip) < EMBEDDING_SAMPLE_RATE // 10 or not np.abs(clip).max() > 0:
                continue  # no usable signal: a zero vector, scored invalid_embedding downstream
            res = am.inference([clip], model=am.spk_model, kwargs=am.spk_kwargs, disable_pbar=True)
            out[i] = res[0]["spk_embedding"].reshape(-1).detach().cpu().numpy()[: self.dim]
        return out


def unit(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


@dataclass(frozen=True)
class SpeakerCentroid:
    episode_id: str
    label: str  # episode-local speaker label
    vector: np.ndarray  # mean of the unit embeddings of its clips
    n_clips: int
    first_s: float  # first appearance in the episode (orders drama-level ids)
    episode_order: int = 0  # position of the episode in the drama (orders drama-level ids)


def centroids_from(
    episode_id: str,
    labels: Sequence[str],
    embeddings: np.ndarray,
    starts: Sequence[float],
    valid: np.ndarray | None = None,
    episode_order: int = 0,
) -> list[SpeakerCentroid]:
    """One centroid per label of one episode from its clips' embeddings (invalid rows skipped)."""
    u = unit(embeddings)
    ok = np.linalg.norm(u, axis=1) > 0 if len(u) else np.zeros(0, dtype=bool)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    labels = np.asarray(labels, dtype=object)
    starts = np.asarray(starts, dtype=np.float64)
    out = []
    for label in dict.fromkeys(labels[ok]):
        rows = ok & (labels == label)
        out.append(
            SpeakerCentroid(
                episode_id,
                str(label),
                u[rows].mean(axis=0),
                int(rows.sum()),
                float(starts[rows].min()),
                episode_order,
            )
        )
    return out


def link_speakers(
    centroids: Sequence[SpeakerCentroid], threshold: float, separate_same_episode: bool = True
) -> list[int]:
    """Drama-level speaker index per centroid (0, 1, ... in order of first appearance).

    Average-linkage agglomerative clustering on the cosine similarity of centroids: the most
    similar pair of clusters is merged while its similarity is ≥ ``threshold``; with
    ``separate_same_episode`` two clusters holding a label of the same episode are never merged.
    """
    m = len(centroids)
    if m == 0:
        return []
    u = unit(np.stack([c.vector for c in centroids]))
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    episodes = np.array([c.episode_id for c in centroids], dtype=object)
    blocked = (
        episodes[:, None] == episodes[None, :]
        if separate_same_episode
        else np.zeros((m, m), dtype=bool)
    )
    np.fill_diagonal(blocked, True)
    size = np.ones(m)
    active = np.ones(m, dtype=bool)
    parent = np.arange(m)
    while True:
        masked = np.where(blocked | ~active[:, None] | ~active[None, :], -np.inf, sim)
        flat = int(np.argmax(masked))
        a, b = divmod(flat, m)
        if not np.isfinite(masked[a, b]) or masked[a, b] < threshold:
            break
        # Lance–Williams update for average linkage: merge b into a
        merged = (size[a] * sim[a] + size[b] * sim[b]) / (size[a] + size[b])
        sim[a, :] = merged
        sim[:, a] = merged
        sim[a, a] = -np.inf
        blocked[a, :] |= blocked[b, :]
        blocked[:, a] |= blocked[:, b]
        size[a] += size[b]
        active[b] = False
        parent[parent == b] = a
    # number clusters by first appearance (episode order, then time in the episode)
    order = sorted(
        range(m),
        key=lambda i: (centroids[i].episode_order, centroids[i].episode_id, centroids[i].first_s),
    )
    ids: dict[int, int] = {}
    for i in order:
        ids.setdefault(int(parent[i]), len(ids))
    return [ids[int(parent[i])] for i in range(m)]


def speaker_purity(
    assigned: Sequence[str], truth: Sequence[Mapping[str, float]]
) -> tuple[pd.DataFrame, dict]:
    """Purity of speaker ids against true speakers, weighted by speech time.

    ``assigned[i]`` is the id given to segment ``i`` and ``truth[i]`` the seconds of each true
    speaker inside it. Per id: its seconds, majority true speaker and purity (the majority's share
    of its speech). Summary: ``ids``, ``true_speakers``, ``purity`` (speech-weighted over ids) and
    ``coverage`` (per true speaker, the share of its speech under the id that holds most of it,
    speech-weighted: 1.0 when no speaker is split over ids).
    """
    if len(assigned) != len(truth):
        raise ValueError(f"{len(assigned)} ids for {len(truth)} segments")
    time = pd.DataFrame(
        [
            {"speaker_id": a, "true": t, "seconds": s}
            for a, times in zip(assigned, truth)
            for t, s in times.items()
            if s > 0
        ],
        columns=["speaker_id", "true", "seconds"],
    )
    if time.empty:
        empty = pd.DataFrame(columns=["speaker_id", "seconds", "majority", "purity"])
        return empty, {
            "ids": len(set(assigned)),
            "true_speakers": 0,
            "purity": float("nan"),
            "coverage": float("nan"),
        }
    grid = time.pivot_table(
        index="speaker_id", columns="true", values="seconds", aggfunc="sum", fill_value=0.0
    )
    table = pd.DataFrame(
        {
            "speaker_id": grid.index,
            "seconds": grid.sum(axis=1).to_numpy(),
            "majority": grid.idxmax(axis=1).to_numpy(),
            "purity": (grid.max(axis=1) / grid.sum(axis=1)).to_numpy(),
        }
    )
    total = float(grid.to_numpy().sum())
    summary = {
        "ids": len(set(assigned)),
        "true_speakers": int(grid.shape[1]),
        "purity": float(grid.max(axis=1).sum() / total),
        "coverage": float(grid.max(axis=0).sum() / total),
    }
    return table.reset_index(drop=True), summary

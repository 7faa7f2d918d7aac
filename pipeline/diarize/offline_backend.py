"""Offline diarizer: silero-vad + resemblyzer window embeddings + clustering (CPU, no model hub).

1. silero-vad finds speech regions (a pause of ``min_silence_s`` ends a region, so regions are
   roughly sentences or phrases) in the mix levelled to ``vad_level_dbfs`` RMS.
2. Sliding windows (``window_s``/``hop_s``, FunASR's CAM++ chunking by default) over the regions
   are embedded with resemblyzer.
3. The window embeddings are clustered with the number of speakers estimated: average-linkage
   agglomerative clustering on cosine distance cut at ``distance_threshold`` (default), or
   spectral clustering with the eigengap rule; clusters smaller than ``min_cluster_windows``
   windows or ``min_cluster_share`` of the episode's windows join their most similar cluster (a
   speaker's restyled lines otherwise become a speaker of their own). Defaults chosen by measured
   DER on generated espeak-ng dramas over music (benchmarks/diarization.py; 24 episodes of 60 s,
   3-6 speakers, half of them with 40 % of the lines pitch-shifted with their formants):
   agglomerative 0.4 / 5 windows / 8 % with VAD threshold 0.3 gave 33.3 % mean DER against 34.8 %
   for 0.4 / 5 windows with VAD 0.5; VAD 0.3 misses 8.5 % of the speech instead of 11.6 % for
   1.7 % false alarm instead of 0.7 %. Thresholds 0.35-0.45, centroid merging at cosine 0.78-0.82,
   larger size floors, region-level embeddings and within-speaker projections learnt on other
   espeak voices (WCCN, NAP, LDA) did no better. ``shift_semitones`` (off by default) compares
   windows also after pitch+formant shifts: it keeps one restyled speaker whole where the default
   splits it, but on 12 of the episodes it traded 31.3 -> 25.3 % DER on the restyled dramas for
   38.9 -> 42.5 % on the others (-4..4 st, 0.35) by merging similar espeak voices, so it stays an
   option (with a 0.1 cosine penalty on shifted matches: 38.6 % against 42.2 % on the 120 s
   dramas below, short of the resegmentation).
3b. Resegmentation (``resegment``, :func:`resegment_windows`): an HMM over the windows in time
   whose states are (speaker, pitch shift), started from the clustering, re-estimates the speaker
   centroids from shift-compensated windows and drops speakers under ``reseg_min_share``; a
   restyled line can rejoin its speaker through a shifted state. Then a median filter over each
   region's window labels removes one-window flips.
4. Each region is split where its window label changes (at the midpoint between window centres),
   and the pieces are shaped to sentence length (:func:`pipeline.segments.shape_segments`).

Measured on espeak-ng dramas (train family; seeds 7 and 8 at 3 dramas x 2 episodes x 60 s and
seeds 12 and 13 at 3 x 2 x 120 s: 24 episodes, 3-6 speakers, 30 % of lines restyled by +-2-5
semitones, music at 10/15 dB), mean DER / missed / false alarm / confusion (% of scored speech):

* before (steps 1-3 as they were): 41.1 / 8.6 / 1.2 / 31.7.
* resegmentation (80 / 0.9 / 0.5 / 0.1, unshifted prior 0.9, shifts -4 -2 2 4): 37.4 / 8.6 / 1.2
  / 26.5; the same HMM without shifted states 39.5-39.9 (concentration 40-80); concentration
  10-150: 37.3-48.3; ``reseg_min_share`` 0.08 / 0.09 / 0.11 / 0.12 / 0.15: 39.2 / 39.0 / 38.9 /
  39.3-40.6 / 43-45; loop 0.8-0.95 and gap 0.3-0.8: 37.2-38.0; clustering cut at 0.35 / 0.45
  first: 38.2 / 40.7; dropping instead the speaker whose windows beat the others by the smallest
  mean cosine margin (0-0.1): 39.0-44.7. The share floor is a sharp optimum (see 0.09 / 0.11).
* + VAD input levelled to -16 dBFS: 36.2 (missed 8.5); to -12: 36.4 / 7.2 / 1.1 / 28.0; to -8: 37.4
  (missed 6.3). -16 is the default: the lowest mean DER, and on a 2-episode 20-s drama -12 moved a
  region boundary enough for the consistency stage to reject one of its two speakers. Missed speech (seeds 7 and 8, 11.5 %)
  was almost all speech silero does not hear under music, not overlap (0.5 %) nor shaping
  (0.0 %): lines said with low energy (-35..-40 dBFS) were missed 20-36 % against 1-3 % for the
  others. A 300 Hz high-pass before the VAD missed less (6.0 %) but confused more (37.1 % DER);
  VAD threshold 0.2 instead of 0.3 hears 85 % of the speech frames instead of 83 % for twice the
  false firing.

On the reporting dramas (seed 11, 3 x 2 x 120 s), mean DER went 46.3 -> 42.0 % on espeak-ng voices
and 52.7 -> 41.3 % on the held-out Piper/Kokoro voices (confusion 29.1 -> 19.7 %; missed speech still
21.1 %) with levelling to -12 dBFS, measured once; with -16 (the default, chosen from the tuning figures
above) see docs/generalization.md. Diarizing takes 0.05-0.13 x real time on one CPU thread (four extra
embedding passes for the shifted views).

Also tried without gain (seed 7, 4 x 2 x 60 s, same embeddings and resegmentation): Google's
``spectralcluster`` 0.2.22 in place of the agglomerative step, with the ICASSP 2018 affinity
refinement (37.5 -> 48.1 % mean DER) or auto-tuned p-pruning (NME-SC, 48.3 %): speaker counts came
out about right but the clusters split voices the same way; the built-in eigengap option gives 46.0 %.
Spectral gating of the music before the VAD (``noisereduce`` 3.0.3, a maintained library without
model weights): on seed 7 missed speech fell 13.6 -> 5.0 % (non-stationary gating, full
reduction) but confusion rose 22.9 -> 31.5 % (DER 37.5 -> 38.4); partial reduction (0.6) 36.6 %,
stationary gating 36.8 %; embedding the gated audio as well 41.7 %; on seed 8 (base 37.2 %) 37.7
and 36.9 % (missed 8.9 -> 5.0, confusion 26.9 -> 31.2). The speech it recovers under music goes
mostly to the wrong speaker: missed speech turns into confusion, and nothing is gained overall.

Left: confusion between espeak voices. With the true window labels DER would be 12.9 % (seeds 7
and 8; with one label per VAD region 29.8 %: 30 % of regions hold two lines), but average-linkage
with the true speaker count gives 40.0 % (Ward 39.3 %), and earlier k-means with the true count
left 14 % confusion though 98.7 % of the windows lie nearest to their own speaker's true centroid:
one espeak voice's styles and restyled lines differ as much as two voices do.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fsclap.offline_models import load_silero_vad
from pipeline.diarize import MODEL_SAMPLE_RATE
from pipeline.segments import Segment, SegmentationConfig, quietest_point, shape_segments
from pipeline.speakers import ResemblyzerEmbedder


class OfflineDiarizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    vad_threshold: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="silero-vad speech probability threshold (0.3: speech under music).",
    )
    vad_highpass_hz: float = Field(
        0.0,
        ge=0,
        description="High-pass the audio the VAD sees at this frequency "
        "(0: off); music's bass otherwise masks quiet lines.",
    )
    vad_level_dbfs: float | None = Field(
        -16.0,
        description="Scale the audio the VAD sees to this RMS level (clipped "
        "at full scale; quiet lines under music are heard more); None: as it is.",
    )
    vad_max_gain_db: float = Field(
        20.0,
        ge=0,
        description="Levelling raises the audio by at most this much (a "
        "near-silent track's noise floor is not made loud).",
    )
    min_speech_s: float = Field(
        0.25, ge=0, description="Shorter speech bursts are ignored by the VAD."
    )
    min_silence_s: float = Field(0.3, ge=0, description="A pause this long ends a speech region.")
    speech_pad_s: float = Field(0.05, ge=0, description="Padding added around VAD regions.")
    window_s: float = Field(1.5, gt=0.2, description="Embedding window length.")
    hop_s: float = Field(0.75, gt=0, description="Embedding window hop.")
    clustering: Literal["agglomerative", "spectral"] = "agglomerative"
    distance_threshold: float = Field(
        0.4, gt=0, lt=2, description="Agglomerative: cosine distance at which merging stops."
    )
    max_speakers: int = Field(10, ge=1, description="Upper bound on speakers per episode.")
    smooth_windows: int = Field(
        3, ge=1, description="Median filter length over a region's window labels (odd)."
    )
    min_cluster_windows: int = Field(
        5,
        ge=1,
        description="Smaller clusters (~4.5 s of speech at the default window) join the most similar one.",
    )
    min_cluster_share: float = Field(
        0.08,
        ge=0,
        lt=0.5,
        description="Clusters with a smaller share of the windows join the most similar one.",
    )
    shift_semitones: tuple[float, ...] = Field(
        (),
        description="Agglomerative: also embed each window shifted by these "
        "semitones (pitch and formants); two windows are as similar as their best-matching shift.",
    )
    resegment: bool = Field(
        True,
        description="Refine the clustering with an HMM over (speaker, pitch shift) states "
        "(see resegment_windows); off: the agglomerative labels as they are.",
    )
    reseg_shift_semitones: tuple[float, ...] = Field(
        (-4.0, -2.0, 2.0, 4.0),
        description="Resegmentation: the "
        "pitch+formant shifts a line may carry relative to its speaker "
        "(restyled lines).",
    )
    reseg_unshifted_prior: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Resegmentation: prior probability that a window "
        "is unshifted; the rest is spread evenly over the shifts.",
    )
    reseg_concentration: float = Field(
        80.0,
        gt=0,
        description="Resegmentation: log-likelihood of a window per unit of "
        "cosine similarity to a speaker centroid (von Mises-Fisher concentration).",
    )
    reseg_loop_prob: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="Resegmentation: probability that the next window of "
        "the same speech region keeps speaker and shift.",
    )
    reseg_gap_loop_prob: float = Field(
        0.5, gt=0, lt=1, description="Resegmentation: the same across a pause (the next region)."
    )
    reseg_min_share: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="Resegmentation: a speaker whose posterior share of "
        "the windows falls below this is dropped (its windows go to the others).",
    )
    reseg_iterations: int = Field(
        10, ge=1, description="Resegmentation: centroid / forward-backward rounds."
    )


class OfflineDiarizer:
    name = "offline-silero-resemblyzer"

    def __init__(
        self,
        config: OfflineDiarizerConfig | None = None,
        segmentation: SegmentationConfig | None = None,
        device: str = "cpu",
    ):
        self.config = config or OfflineDiarizerConfig()
        self.segmentation = segmentation or SegmentationConfig()
        self.device = device
        self._embedder: ResemblyzerEmbedder | None = None

    def embedder(self) -> ResemblyzerEmbedder:
        if self._embedder is None:
            self._embedder = ResemblyzerEmbedder(self.device)
        return self._embedder

    # --- steps ----------------------------------------------------------------------------

    def speech_regions(self, audio: np.ndarray) -> list[tuple[float, float]]:
        import torch
        from silero_vad import get_speech_timestamps

        c = self.config
        if len(audio) < 512:
            return []
        stamps = get_speech_timestamps(
            torch.from_numpy(np.ascontiguousarray(self.vad_input(audio), dtype=np.float32)),
            load_silero_vad(),
            threshold=c.vad_threshold,
            sampling_rate=MODEL_SAMPLE_RATE,
            min_speech_duration_ms=int(c.min_speech_s * 1000),
            min_silence_duration_ms=int(c.min_silence_s * 1000),
            speech_pad_ms=int(c.speech_pad_s * 1000),
        )
        return [(s["start"] / MODEL_SAMPLE_RATE, s["end"] / MODEL_SAMPLE_RATE) for s in stamps]

    def vad_input(self, audio: np.ndarray) -> np.ndarray:
        """The audio as the VAD hears it (high-passed and levelled per the config)."""
        c = self.config
        out = np.asarray(audio, dtype=np.float64)
        if c.vad_highpass_hz > 0:
            import scipy.signal

            sos = scipy.signal.butter(
                4, c.vad_highpass_hz, "highpass", fs=MODEL_SAMPLE_RATE, output="sos"
            )
            out = scipy.signal.sosfilt(sos, out)
        if c.vad_level_dbfs is not None:
            rms = float(np.sqrt(np.mean(out**2)))
            if rms > 1e-6:  # silence stays silence
                gain = min(10 ** (c.vad_level_dbfs / 20) / rms, 10 ** (c.vad_max_gain_db / 20))
                out = np.clip(out * gain, -1.0, 1.0)
        return out.astype(np.float32)

    def cluster(self, embeddings: np.ndarray, shifted: np.ndarray | None = None) -> np.ndarray:
        """Speaker label per window, number of speakers estimated."""
        c = self.config
        return cluster_embeddings(
            embeddings,
            c.clustering,
            c.distance_threshold,
            c.max_speakers,
            c.min_cluster_windows,
            c.min_cluster_share,
            shifted,
        )

    def diarize(self, audio: np.ndarray) -> list[Segment]:
        audio = np.asarray(audio, dtype=np.float32)
        regions = self.speech_regions(audio)
        if not regions:
            return []
        emb, spans = self.embedder().embed_windows(
            audio, self.config.window_s, self.config.hop_s, regions
        )
        shifted = self.shifted_embeddings(audio, spans)
        reseg_shifted = self.resegmentation_embeddings(audio, spans)
        return self.segments_from_windows(audio, regions, emb, spans, shifted, reseg_shifted)

    def resegmentation_embeddings(self, audio: np.ndarray, spans: np.ndarray) -> np.ndarray | None:
        """``(len(reseg_shift_semitones), n_windows, dim)`` embeddings for :func:`resegment_windows`, or None."""
        shifts = [s for s in self.config.reseg_shift_semitones if s]
        if not self.config.resegment or not shifts or len(spans) < 2:
            return None
        return np.stack([self.embedder().embed_spans(audio, spans, s) for s in shifts])

    def shifted_embeddings(self, audio: np.ndarray, spans: np.ndarray) -> np.ndarray | None:
        """``(len(shift_semitones), n_windows, dim)`` embeddings of the windows shifted, or None."""
        shifts = [s for s in self.config.shift_semitones if s]
        if not shifts or len(spans) < 2:
            return None
        return np.stack([self.embedder().embed_spans(audio, spans, s) for s in shifts])

    def segments_from_windows(
        self,
        audio: np.ndarray,
        regions: list[tuple[float, float]],
        emb: np.ndarray,
        spans: np.ndarray,
        shifted: np.ndarray | None = None,
        reseg_shifted: np.ndarray | None = None,
    ) -> list[Segment]:
        """Steps 3-4 on given speech regions and window embeddings (the benchmark reuses them);
        ``reseg_shifted``: the windows embedded at ``reseg_shift_semitones`` (only with ``resegment``)."""
        c = self.config
        labels = self.cluster(emb, shifted) if len(emb) else np.zeros(0, dtype=int)
        centres = spans.mean(axis=1) if len(spans) else np.zeros(0)
        if c.resegment and len(emb) > 1:
            same_region = window_regions(regions, centres)
            same_region = np.r_[False, same_region[1:] == same_region[:-1]]
            views = (
                np.concatenate([emb[None], reseg_shifted])
                if reseg_shifted is not None
                else emb[None]
            )
            n_shifts = len(views) - 1
            shifted_prior = (1 - c.reseg_unshifted_prior) / max(n_shifts, 1)
            shift_prior = np.array([c.reseg_unshifted_prior] + [shifted_prior] * n_shifts)
            labels = resegment_windows(
                views,
                labels,
                same_region,
                c.reseg_concentration,
                c.reseg_loop_prob,
                c.reseg_gap_loop_prob,
                c.reseg_min_share,
                shift_prior,
                c.reseg_iterations,
            )
        pieces: list[Segment] = []
        for start_s, end_s in regions:
            inside = np.flatnonzero((centres >= start_s) & (centres <= end_s))
            if len(inside) == 0:
                # too short to embed: the speaker of the nearest window in time
                label = (
                    int(labels[np.argmin(np.abs(centres - (start_s + end_s) / 2))])
                    if len(labels)
                    else 0
                )
                pieces.append(Segment(start_s, end_s, f"S{label}"))
                continue
            region_labels = median_filter(labels[inside], c.smooth_windows)
            pieces.extend(split_region(start_s, end_s, centres[inside], region_labels))
        pieces = relabel_by_appearance(pieces)
        return shape_segments(pieces, self.segmentation, quietest_point(audio, MODEL_SAMPLE_RATE))


def cluster_embeddings(
    embeddings: np.ndarray,
    method: str,
    distance_threshold: float,
    max_speakers: int,
    min_cluster_windows: int = 1,
    min_cluster_share: float = 0.0,
    shifted: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster label per window embedding, the number of clusters estimated (see the module notes).

    ``shifted`` (``(n_shifts, n, dim)``, agglomerative only): the same windows embedded after pitch
    shifts; the distance of two windows is then the smallest over the shifts of either."""
    n = len(embeddings)
    if n < 2:
        return np.zeros(n, dtype=int)
    u = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    if method == "spectral":
        labels = spectral_eigengap(u, max_speakers)
    else:
        from sklearn.cluster import AgglomerativeClustering

        distance = 1.0 - shift_invariant_similarity(u, shifted)
        labels = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage="average",
            distance_threshold=distance_threshold,
        ).fit_predict(distance)
        if labels.max() + 1 > max_speakers:
            labels = AgglomerativeClustering(
                n_clusters=max_speakers, metric="precomputed", linkage="average"
            ).fit_predict(distance)
    min_size = max(min_cluster_windows, int(np.ceil(min_cluster_share * n)))
    return absorb_small_clusters(u, labels.astype(int), min_size)


def window_regions(regions: list[tuple[float, float]], centres: np.ndarray) -> np.ndarray:
    """Index of the speech region holding each window centre (-1: none)."""
    ids = np.full(len(centres), -1)
    for r, (start_s, end_s) in enumerate(regions):
        ids[(centres >= start_s) & (centres <= end_s)] = r
    return ids


def resegment_windows(
    views: np.ndarray,
    labels: np.ndarray,
    same_region: np.ndarray,
    concentration: float,
    loop_prob: float,
    gap_loop_prob: float,
    min_share: float,
    shift_prior: np.ndarray,
    iterations: int = 10,
) -> np.ndarray:
    """Refine window labels with an HMM whose states are (speaker, pitch shift), VBx-style.

    ``views``: ``(n_shifts, n, dim)`` window embeddings, ``views[0]`` as recorded and the others
    after pitch+formant shifts; ``labels``: the initial clustering; ``same_region[i]``: window i
    continues window i-1's speech region. A window's log-likelihood under (speaker k, shift s) is
    ``concentration`` x the cosine of its shift-s embedding with k's centroid, plus log
    ``shift_prior[s]``; a region keeps its (speaker, shift) with ``loop_prob`` per window (a pause:
    ``gap_loop_prob``), else jumps to a state drawn from the priors. Rounds alternate
    forward-backward with centroids re-estimated from the shift-compensated windows; speakers whose
    posterior share falls under ``min_share`` are dropped. A restyled line (pitch-shifted with its
    formants, which the embedding reads as another voice) can thus rejoin its speaker through a
    shifted state, and the cluster it formed dies out. Returns labels 0..k-1 (argmax over speakers).
    """
    from scipy.special import logsumexp

    n_views, n, _ = views.shape
    if n < 2 or len(np.unique(labels)) < 2:
        return np.zeros(n, dtype=int)
    units = views / np.maximum(np.linalg.norm(views, axis=-1, keepdims=True), 1e-12)
    log_shift_prior = np.log(np.maximum(np.asarray(shift_prior, dtype=np.float64), 1e-12))
    ids, first = np.unique(labels, return_inverse=True)
    posterior = np.zeros((n, len(ids), n_views))
    posterior[np.arange(n), first, 0] = 1.0  # start from the clustering, unshifted
    for _ in range(iterations):
        share = posterior.sum(axis=(0, 2)) / n
        keep = share >= min_share
        keep[np.argmax(share)] = True
        posterior = posterior[:, keep]
        k = posterior.shape[1]
        centroids = np.einsum("nks,snd->kd", posterior, units)
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        log_state_prior = (
            np.log(np.maximum(posterior.sum(axis=(0, 2)) / n, 1e-12))[:, None]
            + log_shift_prior[None, :]
        ).reshape(-1)
        log_emit = concentration * np.einsum("snd,kd->nks", units, centroids).reshape(
            n, k * n_views
        )
        transitions = {
            True: hmm_transitions(log_state_prior, loop_prob),
            False: hmm_transitions(log_state_prior, gap_loop_prob),
        }
        forward = np.zeros_like(log_emit)
        backward = np.zeros_like(log_emit)
        forward[0] = log_state_prior + log_emit[0]
        for i in range(1, n):
            forward[i] = (
                logsumexp(forward[i - 1][:, None] + transitions[bool(same_region[i])], axis=0)
                + log_emit[i]
            )
        for i in range(n - 2, -1, -1):
            ahead = log_emit[i + 1] + backward[i + 1]
            backward[i] = logsumexp(transitions[bool(same_region[i + 1])] + ahead[None, :], axis=1)
        log_post = forward + backward
        posterior = np.exp(log_post - logsumexp(log_post, axis=1, keepdims=True)).reshape(
            n, k, n_views
        )
    return np.unique(np.argmax(posterior.sum(axis=2), axis=1), return_inverse=True)[1]


def hmm_transitions(log_state_prior: np.ndarray, loop_prob: float) -> np.ndarray:
    """Log transition matrix: stay with ``loop_prob``, else jump to a state drawn from the prior."""
    m = len(log_state_prior)
    jump = np.broadcast_to(np.log1p(-loop_prob) + log_state_prior[None, :], (m, m))
    return np.logaddexp(jump, np.where(np.eye(m, dtype=bool), np.log(loop_prob), -np.inf))


def shift_invariant_similarity(u: np.ndarray, shifted: np.ndarray | None) -> np.ndarray:
    """Cosine similarity of unit rows ``u``; with ``shifted`` copies, the best match of window i
    against any shift of window j (and of j against i), so a restyled line can find its speaker."""
    sim = u @ u.T
    if shifted is not None and len(shifted):
        v = shifted / np.maximum(np.linalg.norm(shifted, axis=-1, keepdims=True), 1e-12)
        best = np.max(np.einsum("nd,smd->snm", u, v), axis=0)
        sim = np.maximum(sim, np.maximum(best, best.T))
    return np.clip(sim, -1.0, 1.0)


def absorb_small_clusters(u: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters of fewer than ``min_size`` windows join the cluster with the most similar
    centroid (over-split speakers leave such fragments: a line said in an unusual voice)."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) < 2 or counts.min() >= min_size:
            break
        small = ids[np.argmin(counts)]
        centroids = {k: u[labels == k].mean(axis=0) for k in ids}
        target = max(
            (k for k in ids if k != small), key=lambda k: float(centroids[small] @ centroids[k])
        )
        labels[labels == small] = target
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def spectral_eigengap(u: np.ndarray, max_speakers: int, pval: float = 0.022) -> np.ndarray:
    """Spectral clustering with the eigengap rule (the CAM++ / speechbrain recipe FunASR uses):
    cosine affinity, row-wise p-pruning, unnormalised Laplacian, k = argmax eigengap, k-means."""
    import scipy.linalg
    from sklearn.cluster import KMeans

    n = len(u)
    if n < 4:
        return np.zeros(n, dtype=int)
    affinity = u @ u.T
    keep = max(int(np.ceil(max(pval, 6.0 / n) * n)), 1)
    pruned = np.zeros_like(affinity)
    top = np.argsort(-affinity, axis=1)[:, :keep]
    rows = np.arange(n)[:, None]
    pruned[rows, top] = affinity[rows, top]
    sym = 0.5 * (pruned + pruned.T)
    np.fill_diagonal(sym, 0.0)
    laplacian = np.diag(np.abs(sym).sum(axis=1)) - sym
    values, vectors = scipy.linalg.eigh(laplacian)
    upper = min(max_speakers, n - 1)
    gaps = np.diff(values[: upper + 1])
    k = int(np.argmax(gaps)) + 1
    if k == 1:
        return np.zeros(n, dtype=int)
    return KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vectors[:, :k])


def median_filter(labels: np.ndarray, size: int) -> np.ndarray:
    """Majority vote over a centred window (odd ``size``); ties keep the original label."""
    if size <= 1 or len(labels) < 3:
        return labels.copy()
    half = size // 2
    out = labels.copy()
    for i in range(len(labels)):
        window = labels[max(0, i - half) : i + half + 1]
        values, counts = np.unique(window, return_counts=True)
        best = values[counts == counts.max()]
        out[i] = labels[i] if labels[i] in best else best[0]
    return out


def split_region(
    start_s: float, end_s: float, centres: np.ndarray, labels: np.ndarray
) -> list[Segment]:
    """Cut a speech region where the window label changes, halfway between the window centres."""
    out = []
    seg_start = start_s
    for i in range(1, len(labels)):
        if labels[i] != labels[i - 1]:
            cut = float((centres[i - 1] + centres[i]) / 2)
            out.append(Segment(seg_start, cut, f"S{int(labels[i - 1])}"))
            seg_start = cut
    out.append(Segment(seg_start, end_s, f"S{int(labels[-1])}"))
    return out


def relabel_by_appearance(segments: list[Segment]) -> list[Segment]:
    """Labels S0, S1, ... in order of first appearance (stable, readable)."""
    mapping: dict[str, str] = {}
    for seg in sorted(segments, key=lambda s: s.start_s):
        mapping.setdefault(seg.speaker, f"S{len(mapping)}")
    return [Segment(s.start_s, s.end_s, mapping[s.speaker], s.text) for s in segments]

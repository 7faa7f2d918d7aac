"""A real index for the web tests, built once per session: generated speech (``fsclap synth style``'s
generator), a small FS-CLAP checkpoint trained on it for two epochs, and ``fsclap index`` over it.

Like a corpus-built dataset, the manifest also has ``drama_id``/``language`` columns and three clips that
are segments ``[start_s, end_s)`` of one longer recording (their ids contain a slash, as a path would).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fsclap.audio import load_audio, write_audio

TINY = [
    "model.d_model=32",
    "model.embed_dim=32",
    "model.heads=4",
    "model.dropout=0.0",
    "model.audio={dim: 32, blocks: 2, n_mels: 32, max_seconds: 2.0, dropout: 0.1}",
    "freeze_text=true",
    "workers=0",
    "val_rerank_k=3",
    "pair_loss=hard",
    "pair_negatives=2",
    "epochs=2",
    "batch_size=16",
    "grad_accum=1",
    "lr_scratch=2e-3",
]
SEGMENT_SOURCES = 3  # clips copied into the long recording


@dataclass
class WebIndex:
    index_dir: Path
    checkpoint: Path
    manifest: pd.DataFrame  # the indexed clips (absolute audio paths)
    long_file: Path  # the recording the segment clips come from
    segment_ids: list[str]  # those clips, in order; segment j is a copy of source_ids[j]
    source_ids: list[str]


def _with_segments(
    frame: pd.DataFrame, folder: Path
) -> tuple[pd.DataFrame, Path, list[str], list[str]]:
    sources = frame.iloc[:SEGMENT_SOURCES]
    pieces, rows, offset, sr = [], [], 0, None
    for j, (_, clip) in enumerate(sources.iterrows()):
        wave, sr = load_audio(clip["audio_path"])
        gap = np.zeros(int(0.4 * sr), dtype=np.float32)
        pieces += [gap, wave]
        offset += len(gap)
        row = clip.to_dict()
        row.update(
            clip_id=f"episode-01/seg-{j:03d}",
            start_s=offset / sr,
            end_s=(offset + len(wave)) / sr,
            split="test",
        )
        rows.append(row)
        offset += len(wave)
    long_file = folder / "episode-01.wav"
    write_audio(long_file, np.concatenate([*pieces, np.zeros(int(0.4 * sr), dtype=np.float32)]), sr)
    for row in rows:
        row["audio_path"] = str(long_file)
    out = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
    return out, long_file, [r["clip_id"] for r in rows], sources["clip_id"].tolist()


@pytest.fixture(scope="session")
def web_index(tmp_path_factory) -> WebIndex:
    from fsclap.cli import main as cli
    from fsclap.manifest import ClipManifest
    from pipeline.synth import generate_style_corpus

    root = tmp_path_factory.mktemp("web")
    corpus = generate_style_corpus(root / "style", n=36, seed=11, workers=1)
    frame = ClipManifest.read(corpus.manifest_path, validate_levels=False).frame
    frame["drama_id"] = [f"drama-{'ab'[i % 2]}" for i in range(len(frame))]
    frame["language"] = ["en" if i % 3 else "zh" for i in range(len(frame))]
    frame, long_file, segment_ids, source_ids = _with_segments(frame, root)
    manifest = root / "clips.parquet"
    frame.to_parquet(manifest)
    train_m, val_m = root / "train.parquet", root / "val.parquet"
    frame[frame["split"] != "val"].to_parquet(train_m)
    frame[frame["split"] == "val"].to_parquet(val_m)
    run, index_dir = root / "run", root / "index"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared 2-core machine: one thread avoids stalls
    try:
        assert (
            cli(
                [
                    "train",
                    "--train",
                    str(train_m),
                    "--val",
                    str(val_m),
                    "--out",
                    str(run),
                    *[f"--set={s}" for s in TINY],
                ]
            )
            == 0
        )
        assert (
            cli(
                [
                    "index",
                    "--checkpoint",
                    str(run),
                    "--manifest",
                    str(manifest),
                    "--out",
                    str(index_dir),
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    return WebIndex(index_dir, run, frame, long_file, segment_ids, source_ids)

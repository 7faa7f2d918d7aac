"""Where things live on disk: the one module that spells a path under a data root, a datasets
folder or a training run directory (docs/design.md, "On-disk layout").

Readers sit beside writers (``DatasetsDir.latest`` beside ``write_latest``), so a path and its format
change in one place. Nothing here creates files except the ``write_*`` helpers; every path is
returned whether or not it exists.

A data root::

    sources.yaml                          the default sources file
    manifests/episodes.parquet            one row per episode (+ failures.parquet, .journal.jsonl, .lock)
    manifests/download-archive.txt        yt-dlp's archive of finished downloads
    manifests/segments.parquet            every drama's scored segments
    manifests/clips.parquet               the clip manifest (+ clips_rejected.parquet)
    media/<drama>/...                     downloaded or copied media
    audio/<drama>/<episode>.wav           extracted audio
    vocals/<drama>/<episode>.<fmt>        separated vocals (accompaniment/ beside it)
    segments/<drama>/<episode>.parquet    diarized segments (+ .npy speaker embeddings)
    segments/<drama>.parquet              a drama's segments after consistency
    clips/<drama>/<episode>/              clip audio
    captions/<drama>/<episode>.parquet    per-episode measurements
    datasets/<version>/, datasets/LATEST  published datasets
    runs/fsclap-<version>/                the flows' default training run for a dataset version
    .prefect-results/                     Prefect task results of the build-corpus flow

A training run directory::

    train_config.json                     the resolved training config and schedule
    checkpoints/best/, checkpoints/last/  model.safetensors, config.json, state.json (last)
    metrics.csv, train_log.csv            per epoch / per logged step
    curves.png, skipped.csv, tensorboard/, eval/<label>/
"""

from __future__ import annotations

from pathlib import Path

from fsclap.errors import FsclapError
from fsclap.io import write_text


class DatasetsDir:
    """A folder of published dataset versions (``<data_root>/datasets`` or ``publish --out``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def version(self, version: str) -> Path:
        return self.path / version

    @property
    def latest_file(self) -> Path:
        return self.path / "LATEST"

    @property
    def audio_hash_cache(self) -> Path:
        return self.path / ".audio_sha256.parquet"

    def latest(self) -> str | None:
        """The version ``LATEST`` names, or None when nothing was published here."""
        if not self.latest_file.is_file():
            return None
        return self.latest_file.read_text().strip() or None

    def latest_folder(self) -> Path:
        """The folder of the version ``LATEST`` names (a one-line error when there is none)."""
        version = self.latest()
        if version is None:
            raise FsclapError(
                f"no published dataset under {self.path} (run build-corpus first, or give a dataset)"
            )
        folder = self.version(version)
        if not folder.is_dir():
            raise FsclapError(f"{self.latest_file} names {folder.name}, which does not exist")
        return folder

    def write_latest(self, version: str) -> Path:
        return write_text(self.latest_file, version + "\n")


class DataRoot:
    """Every path the corpus builder reads or writes under one data root."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"DataRoot({str(self.root)!r})"

    # --- the builder's tables ---------------------------------------------------------------

    @property
    def sources_file(self) -> Path:
        return self.root / "sources.yaml"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def episodes_table(self) -> Path:
        return self.manifests / "episodes.parquet"

    @property
    def failures_table(self) -> Path:
        return self.manifests / "failures.parquet"

    @property
    def journal(self) -> Path:
        return self.manifests / ".journal.jsonl"

    @property
    def lock(self) -> Path:
        return self.manifests / ".lock"

    @property
    def download_archive(self) -> Path:
        return self.manifests / "download-archive.txt"

    @property
    def segments_table(self) -> Path:
        return self.manifests / "segments.parquet"

    @property
    def clips_table(self) -> Path:
        return self.manifests / "clips.parquet"

    @property
    def rejected_clips_table(self) -> Path:
        return self.manifests / "clips_rejected.parquet"

    # --- per-episode stage outputs ----------------------------------------------------------

    def media_dir(self, drama_id: str) -> Path:
        return self.root / "media" / drama_id

    def episode_audio(self, drama_id: str, episode_id: str) -> Path:
        return self.root / "audio" / drama_id / f"{episode_id}.wav"

    def separated(self, stem: str, drama_id: str, episode_id: str, fmt: str) -> Path:
        """One stem of the separation stage (``vocals`` or ``accompaniment``)."""
        return self.root / stem / drama_id / f"{episode_id}.{fmt}"

    def episode_segments(self, drama_id: str, episode_id: str) -> Path:
        return self.drama_segments_dir(drama_id) / f"{episode_id}.parquet"

    def episode_embeddings(self, drama_id: str, episode_id: str) -> Path:
        return self.drama_segments_dir(drama_id) / f"{episode_id}.npy"

    def drama_segments_dir(self, drama_id: str) -> Path:
        return self.root / "segments" / drama_id

    def drama_segments(self, drama_id: str) -> Path:
        """A drama's segments after the consistency stage."""
        return self.root / "segments" / f"{drama_id}.parquet"

    def all_drama_segments(self) -> list[Path]:
        return sorted((self.root / "segments").glob("*.parquet"))

    def episode_clips_dir(self, drama_id: str, episode_id: str) -> Path:
        return self.root / "clips" / drama_id / episode_id

    def episode_captions(self, drama_id: str, episode_id: str) -> Path:
        return self.root / "captions" / drama_id / f"{episode_id}.parquet"

    def all_episode_captions(self) -> list[Path]:
        return sorted((self.root / "captions").glob("*/*.parquet"))

    @property
    def demo_dramas(self) -> Path:
        """Generated dramas ``fsclap prefect setup --demo-sources`` builds from (sources.yaml names them)."""
        return self.root / "demo-dramas"

    @property
    def prefect_results(self) -> Path:
        """Per-episode Prefect task results, beside the data every worker mounts."""
        return self.root / ".prefect-results"

    def run_dir(self, name: str) -> Path:
        """A training run kept with the data (the flows' default: ``fsclap-<dataset version>``)."""
        return self.root / "runs" / name

    # --- published datasets ----------------------------------------------------------------

    @property
    def datasets(self) -> DatasetsDir:
        return DatasetsDir(self.root / "datasets")


class RunDir:
    """Every path a training run writes, and what the trainer's state file says."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def train_config(self) -> Path:
        return self.path / "train_config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last"

    @staticmethod
    def state_file(checkpoint: str | Path) -> Path:
        """The trainer's resumable state inside a checkpoint folder."""
        return Path(checkpoint) / "state.json"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def train_log_csv(self) -> Path:
        return self.path / "train_log.csv"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def skipped_csv(self) -> Path:
        return self.path / "skipped.csv"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def test_metrics(self) -> Path:
        return self.path / "test_metrics.json"

    def eval_dir(self, label: str) -> Path:
        return self.path / "eval" / label

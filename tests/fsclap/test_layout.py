from pathlib import Path

import pytest

from fsclap.errors import FsclapError
from fsclap.layout import DataRoot, DatasetsDir, RunDir


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def test_data_root_paths_are_the_ones_earlier_releases_wrote(tmp_path):
    # a data root built by an earlier release must resume without redoing work: these relative
    # paths are part of the on-disk contract (docs/design.md), not a detail to change freely
    root = DataRoot(tmp_path)
    expected = {
        root.sources_file: "sources.yaml",
        root.episodes_table: "manifests/episodes.parquet",
        root.failures_table: "manifests/failures.parquet",
        root.journal: "manifests/.journal.jsonl",
        root.lock: "manifests/.lock",
        root.download_archive: "manifests/download-archive.txt",
        root.segments_table: "manifests/segments.parquet",
        root.clips_table: "manifests/clips.parquet",
        root.rejected_clips_table: "manifests/clips_rejected.parquet",
        root.media_dir("d1"): "media/d1",
        root.episode_audio("d1", "e01"): "audio/d1/e01.wav",
        root.separated("vocals", "d1", "e01", "flac"): "vocals/d1/e01.flac",
        root.episode_segments("d1", "e01"): "segments/d1/e01.parquet",
        root.episode_embeddings("d1", "e01"): "segments/d1/e01.npy",
        root.drama_segments("d1"): "segments/d1.parquet",
        root.episode_clips_dir("d1", "e01"): "clips/d1/e01",
        root.episode_captions("d1", "e01"): "captions/d1/e01.parquet",
        root.datasets.latest_file: "datasets/LATEST",
        root.datasets.version("v1"): "datasets/v1",
        root.run_dir("fsclap-v1"): "runs/fsclap-v1",
    }
    assert [rel(tmp_path, p) for p in expected] == list(expected.values())


def test_globs_find_what_the_stages_write(tmp_path):
    root = DataRoot(tmp_path)
    for path in (
        root.drama_segments("b"),
        root.drama_segments("a"),
        root.episode_segments("a", "1"),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    # the per-drama tables only, not the per-episode tables in the drama folders
    assert root.all_drama_segments() == [root.drama_segments("a"), root.drama_segments("b")]
    caption = root.episode_captions("a", "1")
    caption.parent.mkdir(parents=True)
    caption.touch()
    assert root.all_episode_captions() == [caption]


def test_latest_reads_what_write_latest_wrote(tmp_path):
    datasets = DatasetsDir(tmp_path / "datasets")
    assert datasets.latest() is None  # nothing published yet
    datasets.write_latest("20261207-abc")
    assert datasets.latest() == "20261207-abc"
    assert datasets.latest_file.read_text() == "20261207-abc\n"  # what other tools read
    datasets.latest_file.write_text("  \n")
    assert datasets.latest() is None


def test_latest_folder_names_what_is_missing(tmp_path):
    datasets = DatasetsDir(tmp_path / "datasets")
    with pytest.raises(FsclapError, match="no published dataset under"):
        datasets.latest_folder()
    datasets.write_latest("v-1")
    with pytest.raises(FsclapError, match="names v-1, which does not exist"):
        datasets.latest_folder()
    datasets.version("v-1").mkdir(parents=True)
    assert datasets.latest_folder() == tmp_path / "datasets" / "v-1"


def test_run_dir_paths(tmp_path):
    run = RunDir(tmp_path)
    assert rel(tmp_path, run.best) == "checkpoints/best"
    assert rel(tmp_path, run.last) == "checkpoints/last"
    assert rel(tmp_path, RunDir.state_file(run.last)) == "checkpoints/last/state.json"
    assert [rel(tmp_path, p) for p in (run.train_config, run.metrics_csv, run.curves)] == [
        "train_config.json",
        "metrics.csv",
        "curves.png",
    ]
    assert rel(tmp_path, run.eval_dir("test")) == "eval/test"

"""Fixtures of the flow tests: one Prefect test harness (a real API server over a temporary
SQLite database) for the session, and one generated short drama served on loopback HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from flows.runtime import prepare_local_prefect

prepare_local_prefect()  # before prefect is imported: no analytics, quiet loggers

EPISODES = 3
EPISODE_SECONDS = 20.0


@pytest.fixture(scope="session", autouse=True)
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def drama(tmp_path_factory) -> Path:
    """One drama, three ~20-s episodes (MP4 with speech over music) and their ground truth."""
    from pipeline.synth import generate_dramas

    out = tmp_path_factory.mktemp("drama")
    generate_dramas(out, dramas=1, episodes=EPISODES, seed=11, duration_s=EPISODE_SECONDS, workers=2)
    return out


@pytest.fixture(scope="module")
def served(drama):
    """The drama's folder on a loopback HTTP server for the whole module (stable URLs, so episode
    ids stay the same between builds)."""
    from pipeline.synth import serve_directory

    with serve_directory(drama) as base_url:
        yield base_url


def episode_urls(drama: Path, base_url: str) -> list[str]:
    doc = yaml.safe_load((drama / "sources.yaml").read_text())
    return [f"{base_url}/{u}" for u in doc["dramas"][0]["urls"]]


def write_sources(path: Path, urls: list[str], min_episodes: int = 1) -> Path:
    doc = {"min_episodes": min_episodes, "dramas": [{"id": "drama01", "title": "A generated drama", "language": "en",
                                                     "urls": urls}]}
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def copy_data_root(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst

"""Shared fixtures. Tiny random-weight models are built once per session and saved in their
real layouts, so every test goes through the same loaders as real weights."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# No model hub is reachable; make every HF/ModelScope client fail fast instead of retrying.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MODELSCOPE_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Prefect (the flows, `fsclap corpus build`) keeps its database in a folder of this session, never in
# ~/.prefect, and never talks to a server the developer has configured.
_PREFECT_HOME = tempfile.mkdtemp(prefix="fsclap-test-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
for _key in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
    os.environ.pop(_key, None)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture
def closed_figures(monkeypatch) -> list:
    """The matplotlib figures the code under test closes (its plots save, then ``plt.close(fig)``),
    so a plot test can check the data drawn, not only that a PNG exists."""
    import matplotlib.pyplot as plt

    closed, close = [], plt.close

    def record(fig=None):
        if fig is not None and not isinstance(fig, (str, int)):
            closed.append(fig)
        close(fig)

    monkeypatch.setattr(plt, "close", record)
    return closed


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Tests never read the developer's FSCLAP_* environment or config file."""
    for key in list(os.environ):
        if key.startswith("FSCLAP_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FSCLAP_MODELS", str(tmp_path / "models"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (plots, screenshots)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def tiny_htdemucs_repo(tmp_path_factory) -> Path:
    from fsclap.testing.tiny_models import write_htdemucs_repo

    return write_htdemucs_repo(tmp_path_factory.mktemp("demucs_repo"))

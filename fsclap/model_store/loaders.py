"""What the module that loads a model declares about it, so that checking a model needs no switch
on its id: the files its loader reads from the model's path, and a smoke test that loads it the way
its stage does and runs it once.

Each loader is declared at module level next to the loading code::

    declare_loader(ModelLoader("sensevoice", files=..., smoke_test=...))

in the module the registry names as ``ModelSpec.declared_by`` (``pipeline.separate``,
``pipeline.diarize.funasr_backend``, ``pipeline.emotion``, ``model.backbones.laion_clap``,
``fsclap.offline_models``). Importing that module declares its loaders; the corpus builder imports
its stages' modules and ``fsclap.weights`` (the ``fsclap models`` commands) imports all of them.
This module also holds what the smoke tests share: :func:`near_silence` and :func:`check_finite`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsclap.config import Settings
from fsclap.errors import FsclapError
from fsclap.model_store.registry import MODELS


@dataclass(frozen=True)
class ModelLoader:
    """How model ``model_id`` is read and run by the module that loads it.

    ``files(path, settings)``: role -> file the loader reads from ``path`` (roles starting with
    ``weights`` or ``checkpoint`` name weight files); raises :class:`FsclapError` when the
    configuration cannot say (a broken bag or config file). ``smoke_test(path, settings, device)``:
    load the model from ``path`` the way its stage does, run it once on near-silence, and say what
    it produced (one short phrase); raises when it does not load or gives non-finite output.
    ``companions``: when the model's path names a single file (``model_paths.<id>`` = the
    checkpoint), the entries beside it that belong to the model too (top-level names).
    """

    model_id: str
    files: Callable[[Path, Settings], dict[str, Path]]
    smoke_test: Callable[[Path, Settings, str], str]
    companions: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        """The module that declared it (where its smoke test is defined)."""
        return self.smoke_test.__module__


_LOADERS: dict[str, ModelLoader] = {}


def declare_loader(loader: ModelLoader) -> ModelLoader:
    """Register ``loader`` for its registry id (a module imported again declares it again)."""
    if loader.model_id not in MODELS:
        raise FsclapError(
            f"{loader.module} declares a loader for {loader.model_id!r}, which is not in the model "
            f"registry (fsclap/model_store/registry.py; known: {', '.join(MODELS)})"
        )
    _LOADERS[loader.model_id] = loader
    return loader


def model_loader(model_id: str) -> ModelLoader:
    """The declared loader of ``model_id``; a one-line error naming the module that declares it
    when that module was not imported."""
    loader = _LOADERS.get(model_id)
    if loader is not None:
        return loader
    if model_id not in MODELS:
        raise FsclapError(f"unknown model id {model_id!r} (known: {', '.join(MODELS)})")
    module = MODELS[model_id].declared_by
    raise FsclapError(
        f"no loader is declared for model {model_id!r}"
        + (f": import {module} (it declares it) before checking the model" if module else "")
    )


def declared_loaders() -> dict[str, ModelLoader]:
    """Every loader declared so far, by model id."""
    return dict(_LOADERS)


# --- what the smoke tests share ---------------------------------------------------------------


def near_silence(seconds: float, rate: int, channels: int = 0, seed: int = 0) -> np.ndarray:
    """``seconds`` of -80 dBFS white noise: silence that keeps every front end's log/normalisation finite."""
    shape = (channels, int(seconds * rate)) if channels else (int(seconds * rate),)
    return (np.random.default_rng(seed).standard_normal(shape) * 1e-4).astype(np.float32)


def check_finite(value, what: str) -> None:
    """Raise when a smoke test's output (array or tensor) holds NaN or inf."""
    if hasattr(value, "detach"):  # a torch tensor (torch is not imported here)
        value = value.detach().float().cpu().numpy()
    if not np.isfinite(np.asarray(value)).all():
        raise FsclapError(f"{what} is not finite on silence (NaN/inf weights?)")

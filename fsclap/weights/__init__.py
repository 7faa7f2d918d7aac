"""Model weights of the profiles, the application side: ``pull`` (into one layout, with a lock
file of checksums), ``list``, and the registry and ``verify`` of :mod:`fsclap.model_store`
re-exported for the ``fsclap models`` commands.

Library entry points: :func:`verify_models` (the corpus builder's pre-flight calls
:func:`fsclap.model_store.verify_stage_models`), :func:`pull_models`, :func:`list_models`,
:func:`locate`. Each model's loader (the files it reads, a smoke test) is declared by the module
that loads it; this package imports all of those modules (:data:`LOADER_MODULES`), so every model
of the registry can be listed, pulled and verified. That imports torch (the LAION-CLAP backbone is
a torch module); the model libraries (funasr, demucs, transformers) are imported inside the
functions that load the models.
"""

from fsclap import offline_models
from fsclap.model_store.registry import (
    LOCK_NAME,
    MODELS,
    OFFLINE_MODELS,
    PAPER_MODELS,
    ModelSpec,
    locate,
    model_ids,
)
from fsclap.model_store.verify import VerifyReport, verify_models, verify_stage_models
from fsclap.weights.listing import list_models
from fsclap.weights.pull import PullReport, pull_models
from model.backbones import laion_clap
from pipeline import emotion, separate
from pipeline.diarize import funasr_backend

#: The modules that declare the registry's model loaders (``ModelSpec.declared_by``).
LOADER_MODULES = (separate, funasr_backend, emotion, laion_clap, offline_models)

__all__ = [
    "LOADER_MODULES",
    "LOCK_NAME",
    "MODELS",
    "OFFLINE_MODELS",
    "PAPER_MODELS",
    "ModelSpec",
    "PullReport",
    "VerifyReport",
    "list_models",
    "locate",
    "model_ids",
    "pull_models",
    "verify_models",
    "verify_stage_models",
]

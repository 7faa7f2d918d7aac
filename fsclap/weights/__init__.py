"""Model weights of the profiles: the registry, ``pull`` (into one layout, with a lock file of
checksums), ``verify`` (presence, checksums, a real load and forward pass) and ``list``.

Library entry points: :func:`verify_models` (the flows and the corpus builder call it before any
work), :func:`pull_models`, :func:`list_models`, :func:`locate`. torch and the model libraries
(funasr, demucs, transformers) are imported inside the functions: importing this package loads none
of them.
"""

from fsclap.weights.listing import list_models
from fsclap.weights.pull import PullReport, pull_models
from fsclap.weights.registry import (
    LOCK_NAME,
    MODELS,
    OFFLINE_MODELS,
    PAPER_MODELS,
    ModelSpec,
    locate,
    model_ids,
)
from fsclap.weights.verify import VerifyReport, verify_models, verify_stage_models

__all__ = [
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

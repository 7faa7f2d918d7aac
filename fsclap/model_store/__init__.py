"""The models the profiles use and how to check them: the core part of model management.

* :mod:`~fsclap.model_store.registry`: every model, where it comes from, its files as released,
  where fsclap looks for it (pure data);
* :mod:`~fsclap.model_store.lock`: the lock file of what ``fsclap models pull`` installed;
* :mod:`~fsclap.model_store.loaders`: what the module that loads a model declares about it (the
  files its loader reads, a smoke test) — :class:`ModelLoader`, :func:`declare_loader`;
* :mod:`~fsclap.model_store.presence` and :mod:`~fsclap.model_store.verify`: is a model there,
  does it match its lock, does it load and run (:func:`verify_models`,
  :func:`verify_stage_models`, the corpus builder's pre-flight).

Getting models (``pull``) and listing them are the application's (:mod:`fsclap.weights`).
Importing this package loads neither torch nor any model library.
"""

from fsclap.model_store.loaders import (
    ModelLoader,
    check_finite,
    declare_loader,
    declared_loaders,
    model_loader,
    near_silence,
)
from fsclap.model_store.registry import (
    LOCK_NAME,
    MODELS,
    OFFLINE_MODELS,
    PAPER_MODELS,
    ModelSpec,
    locate,
    model_ids,
)
from fsclap.model_store.verify import (
    ModelCheck,
    VerifyReport,
    verify_model,
    verify_models,
    verify_stage_models,
)

__all__ = [
    "LOCK_NAME",
    "MODELS",
    "OFFLINE_MODELS",
    "PAPER_MODELS",
    "ModelCheck",
    "ModelLoader",
    "ModelSpec",
    "VerifyReport",
    "check_finite",
    "declare_loader",
    "declared_loaders",
    "locate",
    "model_ids",
    "model_loader",
    "near_silence",
    "verify_model",
    "verify_models",
    "verify_stage_models",
]

"""Prefect flows (thin wrappers over pipeline/ and model/): build-corpus, train-fsclap, evaluate-fsclap.

Importing the package sets fsclap's Prefect defaults (:data:`flows.runtime.PREFECT_DEFAULTS`, each
only where the environment does not set it) before any flow module imports Prefect, which reads
its settings once, at import; and keeps a failed run's traceback to one copy in its log
(:mod:`flows.run_logs`).
"""

from flows.run_logs import install_traceback_once
from flows.runtime import apply_prefect_defaults

apply_prefect_defaults()
install_traceback_once()

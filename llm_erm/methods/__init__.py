"""Methods a grid compares besides erm: in-context learning (icl.py) and the trained baselines, i.e. classical
learners, a transformer trained from scratch (sgd) and fine-tuning.

Plain Python, no Prefect. The engine calls `check_learner` before a grid starts and `run_learner`
per cell; their heavy libraries are optional extras, imported only when a learner runs:
`pip install 'llm-erm[baselines]'` (scikit-learn, xgboost) and `pip install 'llm-erm[torch]'`
(torch, transformers).
"""

from llm_erm.methods.base import LabelledData, LearnerResult
from llm_erm.methods.data import SWEEP_SIZES, build_sweep, cell_data, sweep_specs
from llm_erm.methods.registry import (
    EXTRAS,
    LEARNERS,
    METHOD_IDS,
    check_extra,
    check_learner,
    get_learner,
    resolve_settings,
    run_learner,
)

__all__ = [
    "EXTRAS",
    "LEARNERS",
    "METHOD_IDS",
    "SWEEP_SIZES",
    "LabelledData",
    "LearnerResult",
    "build_sweep",
    "cell_data",
    "check_extra",
    "check_learner",
    "get_learner",
    "resolve_settings",
    "run_learner",
    "sweep_specs",
]

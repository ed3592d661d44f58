"""Targets (the hidden functions), generators, leak-free splits and the content-hashed dataset store.

Plain Python: nothing here imports Prefect.
"""

from llm_erm.datasets.batch import build_all, make_specs
from llm_erm.datasets.store import (
    GENERATOR_VERSION,
    Dataset,
    DatasetSpec,
    Split,
    build_dataset,
    dataset_status,
    open_dataset,
    validate_specs,
)
from llm_erm.datasets.tabular import DEFAULT_PROTOCOL, PROTOCOLS, TABULAR_TARGETS, load_table, table_status
from llm_erm.datasets.targets import (
    ALL_TARGETS,
    OFFICIAL_EXTRA_TARGETS,
    REGISTERED_TARGETS,
    SEED_TARGETS,
    Target,
    get_target,
    parity_rand_positions,
    resolve_target,
)

__all__ = [
    "ALL_TARGETS",
    "DEFAULT_PROTOCOL",
    "GENERATOR_VERSION",
    "OFFICIAL_EXTRA_TARGETS",
    "PROTOCOLS",
    "REGISTERED_TARGETS",
    "SEED_TARGETS",
    "TABULAR_TARGETS",
    "Dataset",
    "DatasetSpec",
    "Split",
    "Target",
    "build_all",
    "build_dataset",
    "dataset_status",
    "get_target",
    "load_table",
    "make_specs",
    "open_dataset",
    "parity_rand_positions",
    "resolve_target",
    "table_status",
    "validate_specs",
]

"""Live objects one grid run shares inside the flow process.

Tasks take plain, serialisable parameters (run id, dataset spec, trial, attempt) and look the live
objects up here: a proposer holding an HTTP client, the sandbox's worker processes and the budget
are not parameters to hash, persist or show in the UI.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_erm.budget import Budget
from llm_erm.config import GridConfig

if TYPE_CHECKING:
    from llm_erm.datasets import Dataset, DatasetSpec
    from llm_erm.proposers import Proposer
    from llm_erm.verify import Sandbox

_RUNTIMES: dict[str, Runtime] = {}
_LOCK = threading.Lock()


@dataclass
class Runtime:
    run_id: str
    config: GridConfig
    run_dir: Path
    proposer: Proposer
    sandbox: Sandbox
    budget: Budget
    call_slots: threading.BoundedSemaphore  # model calls in flight, across trials and waves
    propose_task: Any  # the propose task with this run's retry delays
    template: str | None = None  # the user's prompt template, read once
    _datasets: dict[str, Dataset] = field(default_factory=dict)

    def dataset(self, spec: DatasetSpec) -> Dataset:
        """The cell's dataset, built or verified once per run and then served from memory."""
        from llm_erm.datasets import build_dataset

        dataset = self._datasets.get(spec.dataset_id)
        if dataset is None:  # cells are distinct, so two threads never build the same store
            dataset = build_dataset(spec, Path(self.config.datasets_dir))
            self._datasets[spec.dataset_id] = dataset
        return dataset


def register(runtime: Runtime) -> None:
    with _LOCK:
        _RUNTIMES[runtime.run_id] = runtime


def unregister(run_id: str) -> None:
    with _LOCK:
        runtime = _RUNTIMES.pop(run_id, None)
    if runtime is not None:
        runtime.sandbox.close()


def get(run_id: str) -> Runtime:
    try:
        return _RUNTIMES[run_id]
    except KeyError:
        raise RuntimeError(f"no live runtime for run {run_id!r} in this process") from None

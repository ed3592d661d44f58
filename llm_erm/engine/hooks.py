"""How a grid is orchestrated and watched from outside the engine.

The engine calls its hooks at every step; the default runs each step in place and watches nothing, which
is what a notebook wants. The Prefect layer (llm_erm/tasks) overrides them: each step becomes a task run
named like the grid, events become run logs and live artifacts, and `call_slot` adds a global
concurrency limit shared by every worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

# The steps of the pipeline, in order; `step()` receives one of these names. "prepare" generates (or verifies
# and reuses) a cell's dataset and builds its prompt; "trial" proposes, verifies and selects.
STEPS = ("prepare", "trial", "aggregate", "generalize")


@dataclass(frozen=True)
class Event:
    """Something that happened in a run.

    kind: "cell" (a cell's dataset and prompt are ready), "attempt" (an attempt has its row), "retry" (a
    call failed transiently and will be retried), "trial" (a trial finished; `data["result"]` is its
    TrialResult), "failed" (a trial could not finish), "batch" (a Batch API job was submitted or changed
    state), "interrupted".
    """

    kind: str
    label: str  # "fn_c L50", "fn_c L50 t1", "fn_c L50 t1 a3"
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Hooks:
    """No orchestration: steps run in place, events go nowhere."""

    def step(self, step: str, label: str, run: Callable[[], T]) -> T:
        """Run one step of the pipeline (`step` is one of STEPS) and return its value."""
        return run()

    @contextlib.contextmanager
    def call_slot(self) -> Iterator[None]:
        """Held around every model call, inside the engine's own concurrency limit."""
        yield

    def event(self, event: Event) -> None:
        """Told of every event, from whichever thread it happened in; must be cheap."""

    def prefect(self) -> dict[str, Any] | None:
        """Where this run can be watched ({"api_url", "ui_url", "flow_run_id"}), for the manifest; None here."""
        return None


class Callback(Hooks):
    """Hooks that hand every event to a plain function (progress bars, notebooks, tests)."""

    def __init__(self, on_event: Callable[[Event], None]):
        self.on_event = on_event

    def event(self, event: Event) -> None:
        self.on_event(event)

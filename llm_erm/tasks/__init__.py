"""The engine's steps as Prefect tasks, its events as run logs and live artifacts: a thin layer.

`PrefectHooks` is what the erm-grid and erm-cell flows hand the engine. Each step of the pipeline
(llm_erm.engine.STEPS: prepare = generate the dataset and build the prompt, trial, aggregate, generalize)
becomes a task run named like the grid (`prepare fn_c L50`, `trial fn_c L50 t1`, `aggregate`); an attempt is logged on its trial's task run (`fn_c L50 t1 a3: ok val 1.000 ...`),
not made a task run of its own: at 60 calls/s that many task runs would swamp the API server. A trial whose
calls failed ends as a Failed task run. A global concurrency limit, when the run sets `call_limit`, caps model
calls across every worker of the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from llm_erm.engine import STEPS, Event, Hooks, TrialResult
from llm_erm.prefect_env import TEMPORARY_API_ENV

T = TypeVar("T")
ARTIFACT_REFRESH_S = 2.0  # fresh enough for the UI, cheap for a busy flow process


def artifact_key(what: str, run_id: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    safe = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"{what}-{safe}"[:100]


def call_limit_name(run_id: str) -> str:
    return artifact_key("llm-erm-calls", run_id)


def _run_step(label: str, run: Callable[[], Any], box: dict) -> Any:
    box["value"] = value = run()
    if isinstance(value, TrialResult) and value.failure:
        return Failed(message=value.failure)  # the task run reads Failed; the engine still gets its rows
    return None  # the value goes back through `box`: nothing to persist or serialise


_STEP_TASKS = {
    step: task(_run_step, name=step, task_run_name="{label}", cache_policy=NO_CACHE, persist_result=False,
               log_prints=False)
    for step in STEPS
}


class PrefectHooks(Hooks):
    def __init__(self, run_id: str, total_trials: int, call_limit: int | None = None):
        self.run_id = run_id
        self.total = total_trials
        self.call_limit = call_limit
        self._lock = threading.Lock()
        self._finished: list[dict[str, Any]] = []
        self._shown = 0.0
        self._progress_id = None
        self._table_id = None

    # -- steps as task runs -----------------------------------------------------------------------
    def step(self, step: str, label: str, run: Callable[[], T]) -> T:
        box: dict[str, Any] = {}
        state = _STEP_TASKS[step](label, run, box, return_state=True)
        if "value" not in box:  # the step itself raised: hand the engine its exception
            state.result(raise_on_failure=True)
            raise RuntimeError(f"step {label} ended in state {state.name} without a result")
        return box["value"]

    @contextlib.contextmanager
    def call_slot(self) -> Iterator[None]:
        if self.call_limit is None:
            yield
            return
        from prefect.concurrency.sync import concurrency

        with concurrency(call_limit_name(self.run_id), occupy=1, strict=True):
            yield

    # -- events as logs and artifacts -------------------------------------------------------------
    def event(self, event: Event) -> None:
        logger = _logger()
        if event.kind == "attempt":
            logger.info("%s: %s", event.label, event.message)
        elif event.kind == "batch":
            logger.info("%s", event.message)
        elif event.kind == "retry":
            logger.warning("%s: %s", event.label, event.message)
        elif event.kind == "failed":
            logger.error("%s failed: %s", event.label, event.message)
        elif event.kind == "trial":
            result: TrialResult = event.data["result"]
            if result.failure:
                logger.error("%s", result.failure)
            with self._lock:
                self._finished.append(result.summary())
            self.refresh_artifacts()

    def prefect(self) -> dict[str, Any] | None:
        """The API, the UI and this flow run, for the manifest (the viewer links a run to its flow run)."""
        from prefect.runtime import flow_run
        from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

        api = PREFECT_API_URL.value()
        if os.environ.get(TEMPORARY_API_ENV) == api:  # `llm-erm run`'s own server: gone when the run ends
            return {"api_url": None, "ui_url": None, "flow_run_id": flow_run.get_id(), "temporary_server": True}
        ui = PREFECT_UI_URL.value() or (api.removesuffix("/api") if api else None)
        return {"api_url": api, "ui_url": ui, "flow_run_id": flow_run.get_id()}

    def start_artifacts(self) -> None:
        from prefect.artifacts import create_progress_artifact, create_table_artifact

        self._progress_id = create_progress_artifact(0.0, key=artifact_key("progress", self.run_id),
                                                     description=self._progress_text(0))
        self._table_id = create_table_artifact([], key=artifact_key("trials", self.run_id),
                                               description=f"finished trials of {self.run_id}: 0/{self.total}")

    def refresh_artifacts(self, force: bool = False) -> None:
        """Update the two live artifacts in place (one version each), at most every ARTIFACT_REFRESH_S."""
        from prefect.artifacts import update_progress_artifact
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import ArtifactUpdate

        with self._lock:
            if self._table_id is None or (not force and time.monotonic() - self._shown < ARTIFACT_REFRESH_S):
                return
            self._shown = time.monotonic()
            rows, done = list(self._finished), len(self._finished)
        update_progress_artifact(self._progress_id, 100.0 * done / max(self.total, 1),
                                 description=self._progress_text(done))
        with get_client(sync_client=True) as client:
            client.update_artifact(self._table_id, ArtifactUpdate(
                data=json.dumps(rows), description=f"finished trials of {self.run_id}: {done}/{self.total}"))

    def _progress_text(self, done: int) -> str:
        return f"{done}/{self.total} trials of run {self.run_id}"


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except Exception:  # noqa: BLE001 - outside a run context (a prep thread after the flow ended)
        return logging.getLogger("llm_erm")

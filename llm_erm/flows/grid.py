"""The erm-grid and erm-cell flows: the engine (llm_erm.engine) with Prefect's orchestration on top.

    generate dataset -> build prompt -> trial (propose k -> verify -> select) -> aggregate -> analysis

The flow's parameters are GridConfig's fields (generated from it, so the UI's form, `--param` and the
config never drift apart). Resume is the engine's: finished trials create no task runs, and an
interrupted trial reuses every answer in the run's journal. A run in which anything failed ends Failed,
with a message that counts what failed and says how to retry.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from llm_erm.config import GridConfig, flow_signature
from llm_erm.datasets.custom import file_spec
from llm_erm.engine import GridResult, GridRun
from llm_erm.plan import cell_label, describe, dry_run, plan_run
from llm_erm.tasks import PrefectHooks, artifact_key, call_limit_name


class _NoEmptyTraceback(logging.Filter):
    """Prefect logs a task that returned a Failed state with exc_info=True and no exception in flight, which
    prints a stray `NoneType: None` after the line; the line itself is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        return True


def _quiet_empty_tracebacks() -> None:
    for name in ("prefect", "prefect.task_runs", "prefect.flow_runs", ""):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _NoEmptyTraceback) for f in handler.filters):
                handler.addFilter(_NoEmptyTraceback())


_quiet_empty_tracebacks()


def _grid_run_name() -> str:
    """Flow runs are named after their run id, so the UI lists runs by what they are."""
    params = flow_run.get_parameters()
    try:
        return GridConfig(**params).resolved_run_id()
    except Exception:  # noqa: BLE001 - a bad config fails in the flow body, with its own message
        return "erm-grid (invalid parameters)"


def _cell_run_name() -> str:
    params = flow_run.get_parameters()
    return cell_run_name(params.get("config") or {}, params.get("function"), params.get("length"))


def cell_run_name(config: dict[str, Any], function: Any, length: Any) -> str:
    """`<run id> <target> L<length>`, plus the methods when the grid routes methods to deployments (one cell
    then has a flow run per deployment, and each must be told apart, by a resume too)."""
    name = f"{config.get('run_id', '?')} {function} L{length}"
    if config.get("method_deployments"):
        labels = [m.get("label") or m.get("method") if isinstance(m, dict) else str(m)
                  for m in config.get("methods") or []]
        name += f" [{' '.join(map(str, labels))}]"
    return name


def erm_grid_fn(**params: Any):
    config = GridConfig.from_options(**params)
    logger = get_run_logger()
    plan = plan_run(config)  # every refusal, before any dataset, call or file
    if config.dry_run:
        grid = dry_run(plan)
        for item in grid.prompts:
            logger.info("%s\n%s", describe(item, len(plan.methods) > 1), item.prompt)
        logger.info(grid.estimate_text())
        return {"run_id": plan.run_id, "dry_run": True, "calls": grid.calls}
    config, run_id = plan.config, plan.run_id
    if config.call_limit is not None:
        _ensure_call_limit(run_id, config.call_limit)
    if (config.run_dir() / "manifest.json").exists():  # a resume: its killed flow runs, if any, read Crashed
        _mark_stale_runs_crashed("erm-grid", run_id)
    with GridRun(config, hooks=None, plan=plan) as run:
        todo = run.pending()
        hooks = PrefectHooks(run_id, len(todo), config.call_limit)
        run.hooks = hooks
        run.write_manifest()
        logger.info("run %s: %d of %d trials to do (methods %s, sandbox %s)", run_id, len(todo), len(run.work()),
                    ", ".join(m.resolved_label for m in run.methods), run.sandbox.mode if run.sandbox else "unused")
        if config.fan_out and todo:
            result = GridResult(run_id, run.run_dir, pending_before=len(todo))
            cells = {(w.spec.target, w.spec.length) for w in todo}
            result.errors = _fan_out(config, [s for s in run.specs if (s.target, s.length) in cells])
        else:
            hooks.start_artifacts()
            result = run.run(todo)
            hooks.refresh_artifacts(force=True)
        result.cells = run.aggregate()
        if config.generalize_lengths and not result.interrupted:
            run.generalize()
    _summary_artifact(config, result)
    if config.analyze:
        from llm_erm.flows.analysis import erm_analysis

        analysis = erm_analysis(run_id=run_id, results_dir=config.results_dir, datasets_dir=config.datasets_dir,
                                return_state=True)
        outcome = analysis.result(raise_on_failure=False)
        if isinstance(outcome, dict):
            _headline_artifact(run_id, outcome)
        if not analysis.is_completed():
            result.analysis_error = analysis.message
    message = result.failure_message()
    if message is not None:
        logger.error(message)
        return Failed(message=message, data=_outcome(result))
    return Completed(data=_outcome(result))


def erm_cell_fn(function: str, length: int, config: dict[str, Any]):
    """One cell of a fanned-out grid, under the parent's run id: the trials erm-grid would run for it."""
    cfg = GridConfig.from_options(**{**config, "functions": [function], "lengths": [length], "fan_out": False,
                                     "analyze": False})
    run_id = cfg.resolved_run_id()
    _mark_stale_runs_crashed("erm-cell", cell_run_name({**config, "run_id": run_id}, function, length))
    with GridRun(cfg, hooks=None) as run:
        todo = run.pending()
        run.hooks = PrefectHooks(run_id, len(todo), cfg.call_limit)
        run.write_manifest()
        result = run.run(todo)
    message = result.failure_message()
    if message is not None:
        return Failed(message=message, data=_outcome(result))
    return Completed(data=_outcome(result))


erm_grid_fn.__signature__ = flow_signature()
erm_grid = flow(erm_grid_fn, name="erm-grid", flow_run_name=_grid_run_name, log_prints=True,
                validate_parameters=True)
erm_cell = flow(erm_cell_fn, name="erm-cell", flow_run_name=_cell_run_name, log_prints=True)


def _outcome(result: GridResult) -> dict[str, Any]:
    return {"run_id": result.run_id, "run_dir": str(result.run_dir), "trials_run": len(result.trials),
            "failed_calls": result.failed_calls, "errors": result.errors, "cells": result.cells}


def method_routes(config: GridConfig) -> dict[str, list[dict[str, Any]]]:
    """The grid's methods grouped by the erm-cell deployment they run on (config.method_deployments: a method
    label, else the method, else '*', else the default erm-cell deployment)."""
    routes = config.method_deployments or {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for method in config.methods:
        name = routes.get(method.resolved_label) or routes.get(method.method) or routes.get("*") or "erm-cell"
        groups.setdefault(name, []).append(method.model_dump(mode="json", exclude_defaults=True))
    return groups


def _fan_out(config: GridConfig, specs: list) -> list[str]:
    """One flow run of an erm-cell deployment per cell (and per deployment its methods are routed to), all
    under this run's id, journal, budget and call limit, so every worker of every pool shares the grid.
    Returns the cells whose flow run did not complete."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    params = config.model_dump(mode="json", exclude={"functions", "lengths", "fan_out"})
    params["run_id"] = config.resolved_run_id()  # the cells write under the parent's run, always
    groups = method_routes(config)
    runs = {}
    for s in specs:
        for deployment, methods in groups.items():
            cell_config = {**params, "methods": methods}
            run = run_deployment(f"erm-cell/{deployment}", timeout=0,
                                 parameters={"function": file_spec(s.target), "length": s.length, "config": cell_config},
                                 flow_run_name=cell_run_name(cell_config, s.target, s.length))
            runs[run.id] = s
    failed = []
    with get_client(sync_client=True) as client:
        while runs:
            time.sleep(2)
            for run_id, spec in list(runs.items()):
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    del runs[run_id]
                    if not state.is_completed():
                        failed.append(f"cell {cell_label(spec)}: {state.name}: {state.message or ''}".strip())
    return failed


def _ensure_call_limit(run_id: str, limit: int) -> None:
    """The run's global concurrency limit on model calls, shared by every worker (created or resized)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    name = call_limit_name(run_id)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


def _mark_stale_runs_crashed(flow_name: str, run_name: str) -> None:
    """A killed run leaves its flow run Running for ever; resuming the same run id marks it Crashed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    me = flow_run.get_id()
    with get_client(sync_client=True) as client:
        stale = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[run_name]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])),
            ),
        )
        for run in stale:
            if str(run.id) != str(me):
                client.set_flow_run_state(run.id, Crashed(message="the process running it was killed; "
                                                                  "resumed by a later run of the same run id"),
                                          force=True)


def _summary_artifact(config: GridConfig, result: GridResult) -> None:
    from prefect.artifacts import create_markdown_artifact

    lines = [f"# erm-grid {result.run_id}", "",
             "| target | L | trials | test acc (mean ± std) | val acc | attempts | cost $ |",
             "|---|---|---|---|---|---|---|"]
    for c in result.cells:
        std = c.get("test_std")
        spread = f" ± {_fmt(std)}" if c.get("trials_scored", 0) and c.get("trials_scored", 0) > 1 else ""
        lines.append(f"| {c['target']} | {c['length']} | {c.get('trials_scored', c.get('trials'))} | "
                     f"{_fmt(c.get('test_mean'))}{spread} | {_fmt(c.get('val_mean'))} | {c.get('attempts')} | "
                     f"{_fmt(c.get('cost_usd'), 4)} |")
    message = result.failure_message()
    lines += ["", f"**{message}**" if message else "Every trial finished.", "", f"results: `{result.run_dir}`"]
    create_markdown_artifact("\n".join(lines), key=artifact_key("summary", result.run_id),
                             description="erm-grid summary")


def _headline_artifact(run_id: str, analysis: dict[str, Any]) -> None:
    """The analysis headline and the report link, on the grid run itself (not only on its subflow)."""
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(analysis["headline"], key=artifact_key("headline", run_id),
                             description=f"analysis of {run_id}")


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        return "—" if value is None or value != value else f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)

"""The erm-analysis and erm-nightly flows: thin wiring of llm_erm.analysis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from llm_erm.config import default
from llm_erm.results import ledger
from llm_erm.tasks import artifact_key


@task(name="analyze run", task_run_name="analyze {run_id}", cache_policy=NO_CACHE)
def analyze(run_id: str, run_dir: str, datasets_dir: str | None = None):
    from llm_erm.analysis import analyze_run
    from llm_erm.results.storage import resolve

    return analyze_run(resolve(run_dir), datasets_dir=datasets_dir)  # a local path or an object-store URL


@flow(name="erm-analysis", flow_run_name="{run_id} analysis", log_prints=True)  # named like its grid run
def erm_analysis(run_id: str, results_dir: str = default("results_dir"), datasets_dir: str | None = None):
    """Leakage checks, statistics, plots and the HTML report of one run; failed when the run leaked."""
    from llm_erm.results.runs import run_folder

    run_dir = run_folder(results_dir, run_id)
    result = analyze(run_id, str(run_dir), datasets_dir)
    create_markdown_artifact(result.headline, key=artifact_key("analysis", run_id), description=f"analysis of {run_id}")
    print(f"report: {result.report_path}")
    outcome = {"run_id": run_id, "report": str(result.report_path), "cells": len(result.cells),
               "headline": result.headline}
    if not result.ok:
        return Failed(message=f"run {run_id} leaked: {len(result.leakage.leaks)} leakage finding(s); see "
                              f"{result.report_path}", data=outcome)
    return outcome


CHEAP_BASELINES = ("xgboost", "decision-tree", "logreg")  # seconds for a whole default grid
# What a nightly run checks unless its `grid` says otherwise: a small grid and a spend cap, never the whole
# paper grid with a paid model by accident (an empty `grid` would be GridConfig's defaults).
NIGHTLY_GRID: dict[str, Any] = {"functions": ["fn_a", "fn_c", "fn_e"], "lengths": [20, 50], "trials": 2,
                                "attempts": 3}
NIGHTLY_BUDGET_USD = 5.0


def cheap_baselines(names: list[str] | None, logger) -> list[str]:
    """The named baselines (default CHEAP_BASELINES) whose extra imports here; the others are logged, skipped."""
    from llm_erm.errors import UsageError
    from llm_erm.methods import check_extra

    chosen = []
    for name in CHEAP_BASELINES if names is None else names:
        try:
            check_extra(name)
        except UsageError as exc:
            if names is not None:
                raise
            logger.warning("nightly: %s left out: %s", name, exc)
            continue
        chosen.append(name)
    return chosen


def previous_run(results_dir: Path, prefix: str, before: str) -> str | None:
    """The latest run named `<prefix>…` that sorts before `before` and has a summary: last night's run."""
    candidates = sorted(
        p.name for p in results_dir.glob(f"{prefix}*")
        if p.name < before and (p / ledger.SUMMARY_FILE).exists()
    )
    return candidates[-1] if candidates else None


@flow(name="erm-nightly", log_prints=True)
def erm_nightly(
    grid: dict[str, Any] | None = None,
    baseline_run_id: str | None = None,
    run_id: str | None = None,
    results_dir: str = default("results_dir"),
    run_id_prefix: str = "nightly-",
    baselines: list[str] | None = None,
):
    """The grid under a dated run id, then a comparison with a baseline; regressions fail the run.

    `grid` is laid over NIGHTLY_GRID (a small grid) with `budget_usd` NIGHTLY_BUDGET_USD unless it sets its own:
    a nightly spends at most that. Unless the grid names its own methods, the nightly runs erm and the cheap
    baselines beside it (`baselines`, default: the classical learners whose extra is installed), so a
    regression of either shows."""
    from llm_erm.analysis.compare import compare_runs
    from llm_erm.flows.grid import erm_grid
    from llm_erm.results.runs import run_folder

    logger = get_run_logger()
    run_id = run_id or f"{run_id_prefix}{datetime.now(UTC):%Y-%m-%d}"
    grid = {**NIGHTLY_GRID, "budget_usd": NIGHTLY_BUDGET_USD, **(grid or {})}
    if "methods" not in grid:
        grid["methods"] = ["erm", *cheap_baselines(baselines, logger)]
    grid_state = erm_grid(**{**grid, "run_id": run_id, "results_dir": results_dir}, return_state=True)
    if not grid_state.is_completed():
        return Failed(message=f"the nightly grid {run_id} did not complete: {grid_state.message}")
    root = Path(results_dir).resolve()
    baseline = baseline_run_id or previous_run(root, run_id_prefix, run_id)
    if baseline is None:
        logger.warning("no baseline run before %s: nothing to compare", run_id)
        return {"run_id": run_id, "baseline": None, "regressions": 0}
    comparison = compare_runs(run_folder(root, baseline, "baseline_run_id"), run_folder(root, run_id))
    create_markdown_artifact(comparison.to_markdown(), key=artifact_key("nightly", run_id),
                             description=f"{run_id} vs {baseline}")
    if comparison.regressions:
        cells = ", ".join(f"{r.cell} ({r.kind})" for r in comparison.regressions)
        return Failed(message=f"{len(comparison.regressions)} regression(s) vs {baseline}: {cells}")
    return {"run_id": run_id, "baseline": baseline, "regressions": 0}

"""The erm-analysis and erm-nightly flows: thin wiring of llm_erm.analysis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from llm_erm.results import ledger
from llm_erm.tasks import artifact_key


@task(name="analyze run", task_run_name="analyze {run_id}", cache_policy=NO_CACHE)
def analyze(run_id: str, run_dir: str):
    from llm_erm.analysis import analyze_run
    from llm_erm.results.storage import resolve

    return analyze_run(resolve(run_dir))  # a local path or an object-store URL


@flow(name="erm-analysis", log_prints=True)
def erm_analysis(run_id: str, results_dir: str = "results"):
    """Leakage checks, statistics, plots and the HTML report of one run; failed when the run leaked."""
    from llm_erm.results.storage import resolve

    run_dir = resolve(results_dir) / run_id
    result = analyze(run_id, str(run_dir))
    create_markdown_artifact(result.headline, key=artifact_key("analysis", run_id), description=f"analysis of {run_id}")
    print(f"report: {result.report_path}")
    outcome = {"run_id": run_id, "report": str(result.report_path), "cells": len(result.cells),
               "headline": result.headline}
    if not result.ok:
        return Failed(message=f"run {run_id} leaked: {len(result.leakage.leaks)} leakage finding(s); see "
                              f"{result.report_path}", data=outcome)
    return outcome


CHEAP_BASELINES = ("xgboost", "decision-tree", "logreg")  # seconds for a whole default grid


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
    results_dir: str = "results",
    run_id_prefix: str = "nightly-",
    baselines: list[str] | None = None,
):
    """The grid under a dated run id, then a comparison with a baseline; regressions fail the run.

    Unless the grid names its own methods, the nightly runs erm and the cheap baselines beside it
    (`baselines`, default: the classical learners whose extra is installed), so a regression of either shows."""
    from llm_erm.analysis.compare import compare_runs
    from llm_erm.flows.grid import erm_grid

    logger = get_run_logger()
    run_id = run_id or f"{run_id_prefix}{datetime.now(UTC):%Y-%m-%d}"
    grid = dict(grid or {})
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
    comparison = compare_runs(root / baseline, root / run_id)
    create_markdown_artifact(comparison.to_markdown(), key=artifact_key("nightly", run_id),
                             description=f"{run_id} vs {baseline}")
    if comparison.regressions:
        cells = ", ".join(f"{r.cell} ({r.kind})" for r in comparison.regressions)
        return Failed(message=f"{len(comparison.regressions)} regression(s) vs {baseline}: {cells}")
    return {"run_id": run_id, "baseline": baseline, "regressions": 0}

"""The erm-grid flow: generate dataset -> build prompt -> propose k -> verify -> select -> aggregate.

Reads as the pipeline it runs. Resume is two-level: a trial whose Parquet file exists is skipped before
any task is created, and inside an interrupted trial every paid answer comes back from the propose cache.
"""

from __future__ import annotations

import platform
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

import llm_erm
from llm_erm.budget import Budget
from llm_erm.config import GridConfig
from llm_erm.flows import artifact_key
from llm_erm.results import ledger
from llm_erm.results.progress import pending_trials, spent_usd
from llm_erm.tasks import runtime
from llm_erm.tasks.steps import backoff, build_prompt, cell_label, generate_dataset, propose, run_trial

PREP_WORKERS = 2  # datasets and prompts are CPU work: more threads than cores only contend
ARTIFACT_REFRESH_S = 2.0  # the live artifacts: fresh enough for the UI, cheap for a busy flow process


def start_runtime(config: GridConfig) -> runtime.Runtime:
    """Everything that can refuse the run does so here, before any dataset, call or file."""
    from llm_erm.proposers import make_proposer
    from llm_erm.verify import Sandbox

    proposer = make_proposer(config.proposer_config())
    proposer.preflight()
    run_dir = config.run_dir()
    sandbox = Sandbox(
        workers=config.verify_workers, timeout_s=config.candidate_timeout_s, memory_mb=config.candidate_memory_mb
    )
    rt = runtime.Runtime(
        run_id=config.resolved_run_id(),
        config=config,
        run_dir=run_dir,
        proposer=proposer,
        sandbox=sandbox,
        budget=Budget(config.budget_usd, spent_usd(run_dir)),
        call_slots=threading.BoundedSemaphore(config.concurrency),
        # Paid answers are cached beside the run's ledger, so workers sharing results/ share them too.
        propose_task=propose.with_options(retry_delay_seconds=backoff(config.retry_delay_s),
                                          result_storage=run_dir / ledger.PROPOSE_CACHE_DIR),
        template=config.template_text(),
    )
    runtime.register(rt)
    return rt


def write_manifest(rt: runtime.Runtime, specs: list) -> None:
    import importlib.metadata as md

    previous = ledger.read_manifest(rt.run_dir)
    versions = {name: md.version(name) for name in ("prefect", "openai", "pyarrow", "numpy")}
    ledger.write_json(
        rt.run_dir / ledger.MANIFEST_FILE,
        {
            "run_id": rt.run_id,
            "config": rt.config.model_dump(),
            "proposer": rt.proposer.kind,
            "proposer_identity": rt.proposer.identity(),
            "sandbox": rt.sandbox.mode,
            "sandbox_fallback_reason": rt.sandbox.fallback_reason,
            "cells": _union_cells(previous.get("cells", []), specs),
            "trials_per_cell": rt.config.trials,
            "versions": {"llm_erm": llm_erm.__version__, "python": platform.python_version(), **versions},
            "argv": sys.argv,
            "host": platform.node(),
            "created_at": previous.get("created_at", datetime.now(UTC).isoformat()),
            "updated_at": datetime.now(UTC).isoformat(),
        },
    )


def _union_cells(previous: list[dict], specs: list) -> list[dict]:
    """The cells of this run so far: an erm-cell flow run adds its cell, never drops the grid's others."""
    cells = {(c["target"], c["length"]): c for c in previous}
    cells.update({(s.target, s.length): {"target": s.target, "length": s.length, "dataset_id": s.dataset_id}
                  for s in specs})
    return sorted(cells.values(), key=lambda c: (c["target"], c["length"]))


@task(name="aggregate", task_run_name="aggregate", cache_policy=NO_CACHE)
def aggregate(run_dir: str) -> list[dict[str, Any]]:
    """Per-cell summary of the whole ledger (all sessions of this run id), written as summary.parquet."""
    from llm_erm.analysis.stats import summarize_cells

    attempts = ledger.read_attempts(Path(run_dir)).to_pandas()
    summary = summarize_cells(attempts)
    ledger.write_frame(Path(run_dir) / ledger.SUMMARY_FILE, summary)
    return summary.to_dict(orient="records")


def run_cells(config: GridConfig, specs: list) -> dict[str, Any]:
    """Run every pending trial of the given cells, here or (fan_out) as erm-cell flow runs on the pool."""
    logger = get_run_logger()
    rt = start_runtime(config)
    try:
        write_manifest(rt, specs)
        todo = pending_trials(rt.run_dir, specs, config.trials)
        logger.info("run %s: %d of %d trials to do (%s, sandbox %s)", rt.run_id, len(todo),
                    len(specs) * config.trials, rt.proposer.kind, rt.sandbox.mode)
        cells = sorted({spec for spec, _ in todo}, key=lambda s: (s.target, s.length))
        if not todo:
            failed = []
        elif config.fan_out:
            failed = _fan_out(config, cells)
        else:
            failed = _run_trials(rt, cells, todo)
        return {"run_id": rt.run_id, "trials_run": len(todo) - len(failed), "failed": failed}
    finally:
        runtime.unregister(rt.run_id)


def _run_trials(rt: runtime.Runtime, cells: list, todo: list) -> list[str]:
    """The trials in this process; returns what failed (those trials stay pending)."""
    logger = get_run_logger()
    progress = create_progress_artifact(0.0, key=artifact_key("progress", rt.run_id),
                                        description=f"trials of run {rt.run_id}")
    failed: list[str] = []
    # A pipeline: cells are prepared (dataset, prompt) on a small pool, and each cell's trials start on
    # the trial pool as soon as its prompt is ready, so `concurrency` bounds the trials in flight exactly.
    trials_of = {s: [t for spec, t in todo if spec == s] for s in cells}
    with ThreadPoolTaskRunner(max_workers=PREP_WORKERS) as prep, \
            ThreadPoolTaskRunner(max_workers=rt.config.concurrency) as runner:
        prompts = {}
        for s in cells:  # interleaved, so prompts come out while later datasets are still being built
            dataset = prep.submit(generate_dataset, {"run_id": rt.run_id, "spec": s, "label": cell_label(s)})
            prompts[prep.submit(build_prompt, {"run_id": rt.run_id, "spec": dataset, "label": cell_label(s)})] = s
        trials = []
        for ready, spec in prompts.items():  # in cell order, so a grid always starts its trials in one order
            trials += [
                runner.submit(run_trial, {"run_id": rt.run_id, "spec": spec, "prompt": ready.result(), "trial": t,
                                          "label": cell_label(spec, t)})
                for t in trials_of[spec]
            ]
        finished: list[dict[str, Any]] = []
        shown = 0.0
        for done, future in enumerate(as_completed(trials), start=1):
            try:
                finished.append(future.result())
            except Exception as exc:  # one broken trial must not sink the grid; it stays pending
                failed.append(f"{exc}")
                logger.error("trial failed: %s", exc)
            if done == len(trials) or time.monotonic() - shown >= ARTIFACT_REFRESH_S:
                spent = f"${rt.budget.spent_usd:.4f} spent"
                update_progress_artifact(progress, 100.0 * done / len(trials),
                                         description=f"{done}/{len(trials)} trials, {spent}")
                create_table_artifact(finished, key=artifact_key("trials", rt.run_id),
                                      description=f"finished trials of {rt.run_id}: {done}/{len(trials)}, {spent}")
                shown = time.monotonic()
    return failed


def _fan_out(config: GridConfig, specs: list) -> list[str]:
    """One flow run of the erm-cell deployment per cell, so every worker on the pool shares the grid.

    Returns the cells whose flow run did not complete."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    params = config.model_dump(exclude={"functions", "lengths", "fan_out"})
    runs = {
        run_deployment("erm-cell/erm-cell", parameters={"function": s.target, "length": s.length, "config": params},
                       timeout=0, flow_run_name=f"cell {cell_label(s)}").id: s
        for s in specs
    }
    failed = []
    with get_client(sync_client=True) as client:
        while runs:
            time.sleep(2)
            for run_id, spec in list(runs.items()):
                state = client.read_flow_run(run_id).state
                if state is not None and state.is_final():
                    del runs[run_id]
                    if not state.is_completed():
                        failed.append(f"cell {cell_label(spec)}: {state.name}")
    return failed


@flow(name="erm-grid", log_prints=True, validate_parameters=True)
def erm_grid(
    functions: list[str] | None = None,
    lengths: list[int] | None = None,
    attempts: int = 5,
    trials: int = 1,
    train_size: int = 100,
    val_size: int = 100,
    test_size: int = 10000,
    seed: int = 42,
    alphabet: str | None = None,
    proposer: str | None = None,
    model: str = "gpt-5",
    base_url: str | None = None,
    reasoning_effort: str | None = "high",
    verbosity: str | None = "low",
    max_output_tokens: int = 20000,
    tool_choice: str = "auto",
    code_interpreter: bool = False,
    timeout_s: float = 1200.0,
    replay_from: str | None = None,
    enumerate_max_programs: int = 200_000,
    enumerate_max_seconds: float = 20.0,
    prompt_variant: str | None = None,
    prompt_template: str | None = None,
    sanitize: bool = True,
    candidate_timeout_s: float = 10.0,
    candidate_memory_mb: int = 1024,
    retry_delay_s: float = 1.0,
    wave_size: int = 1,
    concurrency: int = 4,
    verify_workers: int | None = None,
    budget_usd: float | None = None,
    run_id: str | None = None,
    results_dir: str = "results",
    datasets_dir: str = "datasets",
    dry_run: bool = False,
    analyze: bool = True,
    fan_out: bool = False,
) -> dict[str, Any]:
    config = GridConfig(**{k: v for k, v in locals().items()})
    specs = config.dataset_specs()
    if dry_run:
        return dry_run_prompts(config)
    outcome = run_cells(config, specs)
    cells = aggregate(str(config.run_dir()))
    create_markdown_artifact(summary_markdown(config, cells), key=artifact_key("summary", config.resolved_run_id()),
                             description="erm-grid summary")
    if config.analyze:
        from llm_erm.flows.analysis import erm_analysis

        erm_analysis(run_id=config.resolved_run_id(), results_dir=config.results_dir)
    if outcome["failed"]:
        raise RuntimeError(f"{len(outcome['failed'])} trials or cells failed; re-run the same run id to retry them")
    return {**outcome, "run_dir": str(config.run_dir()), "cells": cells}


@flow(name="erm-cell", log_prints=True)
def erm_cell(function: str, length: int, config: dict[str, Any]) -> dict[str, Any]:
    """One cell of a fanned-out grid: the same trials erm-grid would run for it."""
    config = GridConfig(**{**config, "functions": [function], "lengths": [length]})
    return run_cells(config, config.dataset_specs())


def dry_run_prompts(config: GridConfig) -> dict[str, Any]:
    """Log every prompt that would be sent (the CLI prints them instead); write no ledger."""
    from llm_erm.plan import planned_prompts

    logger = get_run_logger()
    calls = 0
    for label, prompt in planned_prompts(config):
        logger.info("===== %s =====\n%s", label, prompt)
        calls += 1
    return {"run_id": config.resolved_run_id(), "dry_run": True, "calls": calls}


def summary_markdown(config: GridConfig, cells: list[dict[str, Any]]) -> str:
    lines = [f"# erm-grid {config.resolved_run_id()}", "",
             "| target | L | trials | test acc (mean ± std) | val acc | attempts | cost $ |",
             "|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(
            f"| {c['target']} | {c['length']} | {c.get('trials_scored', c.get('trials'))} | "
            f"{_fmt(c.get('test_mean'))} ± {_fmt(c.get('test_std'))} | {_fmt(c.get('val_mean'))} | "
            f"{c.get('attempts')} | {_fmt(c.get('cost_usd'), 4)} |"
        )
    lines += ["", f"results: `{config.run_dir()}`"]
    return "\n".join(lines)


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        return "—" if value is None or value != value else f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


"""The experiment engine: dataset -> prompt -> propose (retries) -> verify -> select, per trial and per grid.

Plain Python, no Prefect. `GridRun` opens everything a run shares (proposer, sandbox pool, answer journal,
budget, call slots) once; `run_grid` runs every pending trial of a grid on a thread pool and writes the
ledger; `run_trial` runs one. The Prefect layer passes Hooks that turn steps into task runs.

A trial's attempts run one after another (or in waves) until the selection rule calls one solved. Each
model answer goes to the journal the moment it arrives, before it is verified, so a trial interrupted
half-way (SIGKILL included) reuses on resume every answer it paid for. A trial is written to the ledger
atomically when it ends; one whose calls failed is written too (its rows say why) but stays pending,
and a re-run makes exactly those calls again.
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.metadata as md
import platform
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import llm_erm
from llm_erm.budget import Budget
from llm_erm.config import GridConfig
from llm_erm.datasets import Dataset, DatasetSpec, build_dataset
from llm_erm.engine.hooks import Event, Hooks
from llm_erm.engine.results import GridResult, TrialResult
from llm_erm.engine.retry import Interrupted, RetryPolicy, call_with_retries
from llm_erm.proposers import ProposeRequest, ProposerError, make_proposer
from llm_erm.results import ledger
from llm_erm.results.journal import Journal, request_key, sha256_text
from llm_erm.results.progress import pending_trials, running_marker
from llm_erm.results.rows import attempt_row, finish_trial, request_params_json
from llm_erm.results.schema import SKIPPED_BUDGET
from llm_erm.selection import get_rule

PREP_WORKERS = 2  # datasets and prompts are CPU work: more threads than cores only contend


def attempt_seed(run_id: str, prompt_sha256: str, trial: int, attempt: int) -> int:
    """A sampling seed of its own per attempt: k attempts are k different, reproducible samples."""
    digest = hashlib.sha256(f"{run_id}|{prompt_sha256}|t{trial}|a{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def cell_label(spec: DatasetSpec) -> str:
    return f"{spec.target} L{spec.length}"


@dataclass(frozen=True)
class Cell:
    """A cell ready for its trials: its dataset and the prompt every attempt is shown."""

    spec: DatasetSpec
    dataset: Dataset
    prompt: str

    @property
    def label(self) -> str:
        return cell_label(self.spec)

    @property
    def prompt_sha256(self) -> str:
        return sha256_text(self.prompt)


def open_sandbox(config: GridConfig):
    from llm_erm.verify import Sandbox

    try:
        return Sandbox(workers=config.verify_workers, time_per_input_s=config.candidate_timeout_s,
                       memory_mb=config.candidate_memory_mb, mode=config.sandbox)
    except TypeError:  # TEMP: until the sandbox branch (per-input time limits) lands
        rows = config.train_size + config.val_size + config.test_size
        return Sandbox(workers=config.verify_workers, timeout_s=max(10.0, config.candidate_timeout_s * rows),
                       memory_mb=config.candidate_memory_mb, mode=None if config.sandbox == "auto" else config.sandbox)


class GridRun:
    """One run of a grid in this process. Everything that can refuse the run does so in the constructor,
    before any dataset, call or file; use it as a context manager (it owns worker processes)."""

    def __init__(self, config: GridConfig, hooks: Hooks | None = None):
        self.config = config = config.resolved()
        self.hooks = hooks or Hooks()
        self.run_id = config.resolved_run_id()
        self.run_dir = config.run_dir()
        self.specs = config.dataset_specs()
        self.template = config.template_text()
        self.rule = get_rule(config.selection)
        self.proposer = make_proposer(config.proposer)
        self.proposer.preflight()
        self.provider = self.proposer.identity()
        self.policy = RetryPolicy(retries=config.retries, first_delay_s=config.retry_delay_s,
                                  max_retry_after_s=config.max_retry_after_s)
        self.stop = threading.Event()
        self.sandbox = open_sandbox(config)
        self.journal = Journal(self.run_dir)
        self.budget = Budget(config.budget_usd, self.journal)
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._wave_pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> GridRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()
        if self._wave_pool is not None:
            self._wave_pool.shutdown(wait=False, cancel_futures=True)
        self.sandbox.close()
        self.journal.close()

    # -- the run ------------------------------------------------------------------------------------
    def pending(self, specs: Sequence[DatasetSpec] | None = None) -> list[tuple[DatasetSpec, int]]:
        """(cell, trial) of every trial not done yet, in grid order."""
        return pending_trials(self.run_dir, list(specs or self.specs), self.config.trials)

    def write_manifest(self) -> None:
        previous = ledger.read_manifest(self.run_dir)
        versions = {name: md.version(name) for name in ("prefect", "openai", "pyarrow", "numpy")}
        ledger.write_json(self.run_dir / ledger.MANIFEST_FILE, {
            "run_id": self.run_id,
            "config": self.config.model_dump(mode="json"),
            "proposer": self.proposer.kind,
            "proposer_identity": self.provider,
            "selection_rule": self.rule.name,
            "sandbox": self.sandbox.mode,
            "sandbox_fallback_reason": self.sandbox.fallback_reason,
            "sandbox_bounds": getattr(self.sandbox, "bounds", None),
            "cells": _union_cells(previous.get("cells", []), self.specs),
            "trials_per_cell": self.config.trials,
            "versions": {"llm_erm": llm_erm.__version__, "python": platform.python_version(), **versions},
            "argv": sys.argv,
            "host": platform.node(),
            "created_at": previous.get("created_at", datetime.now(UTC).isoformat()),
            "updated_at": datetime.now(UTC).isoformat(),
        })

    def prepare(self, spec: DatasetSpec) -> Cell:
        """The cell's dataset (built, or verified and reused) and its prompt."""
        from llm_erm.proposers.prompt import build_prompt

        label = cell_label(spec)
        dataset = self.hooks.step("generate dataset", f"dataset {label}",
                                  lambda: build_dataset(spec, Path(self.config.datasets_dir)))
        prompt = self.hooks.step("build prompt", f"prompt {label}",
                                 lambda: build_prompt(dataset, variant=self.config.prompt_variant,
                                                      template=self.template))
        self.hooks.event(Event("cell", label))
        return Cell(spec, dataset, prompt)

    def run(self, todo: Sequence[tuple[DatasetSpec, int]]) -> GridResult:
        """Every (cell, trial) in `todo`: cells are prepared on a small pool and each cell's trials start on
        the trial pool as soon as its prompt is ready, in grid order; `concurrency` bounds trials in flight."""
        if self.config.proposer.batch:  # OpenAI's Batch API: the attempts in waves (llm_erm/engine/batch.py)
            from llm_erm.engine.batch import run_batched

            return run_batched(self, todo)
        result = GridResult(self.run_id, self.run_dir, pending_before=len(todo))
        cells = list(dict.fromkeys(spec for spec, _ in todo))
        trials_of = {spec: [t for s, t in todo if s == spec] for spec in cells}
        prep = ThreadPoolExecutor(PREP_WORKERS, thread_name_prefix="llm-erm-prep")
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="llm-erm-trial")
        prepared = [_submit(prep, self.prepare, spec) for spec in cells]
        running: dict[Future, str] = {}
        interrupted = True
        try:
            for spec, ready in zip(cells, prepared, strict=True):
                try:
                    cell = ready.result()
                except Exception as exc:  # noqa: BLE001 - one broken cell must not sink the grid
                    result.errors.append(f"{cell_label(spec)}: {type(exc).__name__}: {exc}")
                    self.hooks.event(Event("failed", cell_label(spec), result.errors[-1]))
                    continue
                for t in trials_of[spec]:
                    running[_submit(pool, self.trial, cell, t)] = f"{cell.label} t{t}"
            for future in _as_completed(running):
                try:
                    result.trials.append(future.result())
                except Interrupted:
                    result.interrupted = True
                except Exception as exc:  # noqa: BLE001 - the trial stays pending; a re-run retries it
                    result.errors.append(f"{running[future]}: {type(exc).__name__}: {exc}")
                    self.hooks.event(Event("failed", running[future], result.errors[-1]))
            interrupted = False
        finally:
            if interrupted:  # KeyboardInterrupt, SIGTERM: no new call starts, nothing waits for calls in flight
                self.stop.set()
            for executor in (prep, pool):
                executor.shutdown(wait=not interrupted, cancel_futures=True)
        result.interrupted = result.interrupted or self.stop.is_set()
        return result

    def aggregate(self) -> list[dict[str, Any]]:
        return self.hooks.step("aggregate", "aggregate", lambda: aggregate(self.run_dir))

    # -- one trial ----------------------------------------------------------------------------------
    def trial(self, cell: Cell, trial: int) -> TrialResult:
        label = f"{cell.label} t{trial}"
        result = self.hooks.step("trial", f"trial {label}", lambda: self._trial(cell, trial))
        self.hooks.event(Event("trial", label, result.failure or "", {"result": result}))
        return result

    def _trial(self, cell: Cell, trial: int) -> TrialResult:
        cfg = self.config
        identity = self._identity(cell, trial)
        rows: list[dict[str, Any]] = []
        with running_marker(self.run_dir, cell.spec.target, cell.spec.length, trial):
            attempt = 1
            while attempt <= cfg.attempts:
                wave = range(attempt, min(attempt + cfg.wave_size, cfg.attempts + 1))
                if len(wave) == 1:
                    rows.append(self.attempt(cell, trial, attempt, identity))
                else:
                    futures = [_submit(self._waves(), self.attempt, cell, trial, a, identity) for a in wave]
                    rows += [f.result() for f in futures]
                attempt = wave.stop
                if any(row["status"] == SKIPPED_BUDGET for row in rows):
                    rows += [attempt_row(identity=identity, attempt=a, skipped=True)
                             for a in range(attempt, cfg.attempts + 1)]
                    break
                if any(self.rule.solved(row) for row in rows):
                    break
            rows = finish_trial(rows, cfg.attempts, self.rule)
            ledger.write_trial(self.run_dir, cell.spec.target, cell.spec.length, trial, rows)
        return TrialResult(cell.spec.target, cell.spec.length, trial, rows)

    def attempt(self, cell: Cell, trial: int, attempt: int, identity: dict[str, Any]) -> dict[str, Any]:
        """Propose (or find the answer in the journal), verify, and return the attempt's row."""
        from llm_erm.verify import verify_candidate

        label = f"{cell.label} t{trial} a{attempt}"
        seed = attempt_seed(self.run_id, cell.prompt_sha256, trial, attempt)
        key = request_key(run_id=self.run_id, proposer=self.provider, prompt_sha256=cell.prompt_sha256,
                          trial=trial, attempt=attempt)
        answer = self.journal.lookup(key)
        reused = answer is not None
        if answer is None:
            if self.stop.is_set():
                raise Interrupted("the run is stopping")
            # The budget is checked while holding a call slot, so a call that waited for a slot sees the
            # spend of the calls before it: once the budget is reached no new call starts.
            with self._slots, self.hooks.call_slot():
                if self.budget.exhausted():
                    return attempt_row(identity=identity, attempt=attempt, skipped=True)
                request = ProposeRequest(prompt=cell.prompt, trial=trial, attempt=attempt, seed=seed)
                try:
                    proposal = call_with_retries(
                        lambda: self.proposer.propose(request), self.policy, self.stop,
                        on_retry=lambda n, delay, exc: self.hooks.event(Event(
                            "retry", label, f"retry {n}/{self.policy.retries} in {delay:.1f} s: {exc}")),
                    )
                except ProposerError as exc:
                    row = attempt_row(identity=identity, attempt=attempt, propose_error=f"{type(exc).__name__}: {exc}")
                    self.hooks.event(Event("attempt", label, f"call failed: {row['propose_error']}", {"row": row}))
                    return {**row, "seed": seed}
                except (Interrupted, KeyboardInterrupt):
                    raise
                except Exception as exc:  # noqa: BLE001 - a proposer's own bug fails its attempt, not the grid
                    error = f"{type(exc).__name__} in proposer {self.proposer.kind}: {exc}"
                    row = attempt_row(identity=identity, attempt=attempt, propose_error=error)
                    self.hooks.event(Event("attempt", label, f"call failed: {error}", {"row": row}))
                    return {**row, "seed": seed}
            answer = self.journal.append(key, {
                "kind": "answer", "run_id": self.run_id, "target": cell.spec.target, "length": cell.spec.length,
                "trial": trial, "attempt": attempt, "seed": seed, "prompt_sha256": cell.prompt_sha256,
                "provider": self.provider, **proposal.to_dict(),
            })
        verdict = verify_candidate(answer["text"], cell.dataset, self.sandbox, sanitize=self.config.sanitize)
        row = attempt_row(identity=identity, attempt=attempt, proposal=answer, verdict=verdict.to_row(),
                          reused=reused)
        row["seed"] = seed
        self.hooks.event(Event("attempt", label, _describe(row), {"row": row}))
        return row

    def _identity(self, cell: Cell, trial: int) -> dict[str, Any]:
        """The columns every attempt row of the trial shares."""
        cfg = self.config
        return {
            "run_id": self.run_id,
            "target": cell.spec.target,
            "target_name": cell.dataset.target.name,
            "length": cell.spec.length,
            "trial": trial,
            "dataset_id": cell.dataset.dataset_id,
            "dataset_path": str(cell.dataset.path),
            "protocol": cell.spec.protocol if cell.dataset.target.table else None,
            "proposer": self.proposer.kind,
            "model": self.provider.get("model", self.proposer.kind),
            "base_url": self.provider.get("base_url"),
            "request_params": request_params_json(self.provider),
            "prompt_variant": cfg.prompt_variant,
            "prompt": cell.prompt,
            "prompt_sha256": cell.prompt_sha256,
        }

    def _waves(self) -> ThreadPoolExecutor:
        if self._wave_pool is None:
            workers = self.config.concurrency * self.config.wave_size
            self._wave_pool = ThreadPoolExecutor(workers, thread_name_prefix="llm-erm-wave")
        return self._wave_pool


def aggregate(run_dir: Path) -> list[dict[str, Any]]:
    """Per-cell summary of the whole ledger (every session and worker of the run), as summary.parquet."""
    from llm_erm.analysis.stats import summarize_cells

    attempts = ledger.read_attempts(run_dir).to_pandas()
    summary = summarize_cells(attempts)
    ledger.write_frame(run_dir / ledger.SUMMARY_FILE, summary)
    return summary.to_dict(orient="records")


def run_grid(config: GridConfig, hooks: Hooks | None = None) -> GridResult:
    """Run every pending trial of the grid in this process, then summarise (and analyse) the whole run.

    Resumable: re-running the same config (or run id) skips finished trials and reuses every answer already
    in the journal. Returns the per-cell results; `result.ok` is False when any call or trial failed.
    """
    with GridRun(config, hooks) as run:
        run.write_manifest()
        result = run.run(run.pending())
        result.cells = run.aggregate()
    if config.analyze and not result.interrupted:
        from llm_erm.analysis import analyze_run

        analysis = analyze_run(result.run_dir)
        if not analysis.ok:
            result.analysis_error = (f"the leakage check failed ({len(analysis.leakage.leaks)} finding(s)): "
                                     f"see {analysis.report_path}")
    return result


def run_trial(config: GridConfig, target: str, length: int, trial: int = 1,
              hooks: Hooks | None = None) -> TrialResult:
    """One trial of one cell, written to the run's ledger like any other (a finished one is run again)."""
    config = config.model_copy(update={"functions": [target], "lengths": [length]})
    with GridRun(config, hooks) as run:
        run.write_manifest()
        return run.trial(run.prepare(run.specs[0]), trial)


# -- helpers ----------------------------------------------------------------------------------------
def _union_cells(previous: list[dict], specs: Sequence[DatasetSpec]) -> list[dict]:
    """The cells of this run so far: an erm-cell flow run adds its cell, never drops the grid's others."""
    cells = {(c["target"], c["length"]): c for c in previous}
    cells.update({(s.target, s.length): {"target": s.target, "length": s.length, "dataset_id": s.dataset_id}
                  for s in specs})
    return sorted(cells.values(), key=lambda c: (c["target"], c["length"]))


def _submit(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future:
    """Submit with the caller's context variables, so hooks (a Prefect flow run's context) see them."""
    return pool.submit(contextvars.copy_context().run, fn, *args)


def _as_completed(futures: dict[Future, str]):
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


def _describe(row: dict[str, Any]) -> str:
    def num(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    cost = "" if row.get("cost_usd") is None else f", ${row['cost_usd']:.4f}"
    reused = " (answer from the journal)" if row.get("reused_answer") else ""
    return (f"{row['status']}: val {num(row.get('val_acc'))} test {num(row.get('test_acc'))}, "
            f"{row.get('latency_s') or 0:.1f} s{cost}{reused}")

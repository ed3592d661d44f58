"""The experiment engine: per cell and method, dataset -> (prompt -> propose -> verify -> select | a baseline).

Plain Python, no Prefect. `GridRun` opens everything a run shares (proposers, sandbox pool, answer journal,
budget, call slots) once; `run_grid` runs every pending trial of a grid on a thread pool and writes the
ledger; `run_trial` runs one. The Prefect layer passes Hooks that turn steps into task runs.

A grid is targets x lengths x methods x trials. An erm trial's attempts run one after another (or in waves)
until the selection rule calls one solved; each model answer goes to the journal the moment it arrives,
before it is verified, so a trial interrupted half-way (SIGKILL included) reuses on resume every answer it
paid for. An icl trial journals each of its answers the same way (engine/methods.py); a trained baseline is
free and deterministic, so it is simply run again. A trial is written to the ledger atomically when it
ends; one whose calls failed is written too (its rows say why) but stays pending, and a re-run makes exactly
those calls again.
"""

from __future__ import annotations

import contextlib
import errno
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
from llm_erm.config import ERM, GridConfig
from llm_erm.datasets import Dataset, DatasetSpec, build_dataset
from llm_erm.engine.budget import Budget
from llm_erm.engine.calls import request, submit
from llm_erm.engine.hooks import Event, Hooks
from llm_erm.engine.results import GridResult, TrialResult
from llm_erm.engine.retry import Interrupted, RetryPolicy, call_with_retries
from llm_erm.engine.waves import trial_over, waves
from llm_erm.errors import UsageError
from llm_erm.plan import Plan, Work, cell_label, method_spec, plan_run, work_items
from llm_erm.proposers import ProposeRequest, ProposerError
from llm_erm.results import ledger
from llm_erm.results.claims import Claim, ClaimLost, Claims
from llm_erm.results.journal import Journal, sha256_text
from llm_erm.results.progress import pending, running_marker, trial_done
from llm_erm.results.prompts import store_prompt
from llm_erm.results.rows import attempt_row, finish_trial, request_params_json
from llm_erm.results.schema import SKIPPED_BUDGET, UNSTORABLE
from llm_erm.results.selection import get_rule
from llm_erm.results.storage import ensure_writable

PREP_WORKERS = 2  # datasets and prompts are CPU work: more threads than cores only contend


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})  # full, over quota, read-only


def disk_failure(exc: BaseException) -> bool:
    """A write the run cannot recover from by itself: the whole run stops (llm-erm run names it)."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


@dataclass(frozen=True)
class Cell:
    """A dataset ready for its trials, and the erm prompt when an erm method needs one."""

    spec: DatasetSpec
    dataset: Dataset
    prompt: str | None

    @property
    def label(self) -> str:
        return cell_label(self.spec)

    @property
    def prompt_sha256(self) -> str:
        return sha256_text(self.prompt or "")


def open_sandbox(config: GridConfig):
    from llm_erm.verify import Sandbox

    return Sandbox(workers=config.verify_workers, time_per_input_s=config.candidate_timeout_s,
                   memory_mb=config.candidate_memory_mb, mode=config.sandbox)


class GridRun:
    """One run of a grid in this process. Everything that can refuse the run does so in the constructor,
    before any dataset, call or file; use it as a context manager (it owns worker processes)."""

    def __init__(self, config: GridConfig, hooks: Hooks | None = None, plan: Plan | None = None):
        self.plan = plan = plan or plan_run(config)  # every refusal is the plan's
        self.config = config = plan.config
        self.hooks = hooks or Hooks()
        self.run_id = plan.run_id
        self.run_dir = plan.run_dir
        ensure_writable(self.run_dir)  # an object store we cannot write to: one line now, not a failed trial later
        self.specs = plan.specs
        self.methods = [m.spec for m in plan.methods.values()]
        self.several = len(self.methods) > 1  # labels appear in task-run names only when they tell apart
        self.template = plan.template
        self.rule = get_rule(config.selection)
        self.policy = RetryPolicy(retries=config.retries, first_delay_s=config.retry_delay_s,
                                  max_retry_after_s=config.max_retry_after_s)
        self.proposers: dict[str, Any] = {m.label: m.proposer for m in plan.methods.values() if m.proposer}
        self.providers: dict[str, dict[str, Any]] = {label: self.proposers[label].identity()
                                                     for label in self.proposers}
        # label -> what a non-erm method prepared (settings, askers)
        self.methods_ready: dict[str, Any] = {m.label: m.prepared for m in plan.methods.values() if m.prepared}
        self.stop = threading.Event()
        self.sandbox = open_sandbox(config) if self.proposers else None
        self.journal = Journal(self.run_dir)
        self.budget = Budget(config.budget_usd, self.journal)
        self.claims = Claims(self.run_dir)  # no two processes of the run take the same trial (claims.py)
        self._held: dict[tuple[str, str, int, int], Claim] = {}
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._wave_pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __enter__(self) -> GridRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()
        if self._wave_pool is not None:
            self._wave_pool.shutdown(wait=False, cancel_futures=True)
        if self.sandbox is not None:
            self.sandbox.close()
        self.claims.close()
        self.journal.close()

    # -- the plan -----------------------------------------------------------------------------------
    def work(self, specs: Sequence[DatasetSpec] | None = None) -> list[Work]:
        return work_items(self.config, specs or self.specs)

    def pending(self, specs: Sequence[DatasetSpec] | None = None) -> list[Work]:
        """The trials not done yet, in grid order; those another live process holds come last (this one takes
        the free trials first, then waits for those: see trial())."""
        items = self.work(specs)
        todo = set(pending(self.run_dir, [w.key for w in items]))
        mine = [w for w in items if w.key in todo]
        held = self.claims.live([w.key for w in mine])
        return [w for w in mine if w.key not in held] + [w for w in mine if w.key in held]

    def write_manifest(self) -> None:
        previous = ledger.read_manifest(self.run_dir)
        check_datasets(previous, self.work())
        versions = {name: md.version(name) for name in ("prefect", "openai", "pyarrow", "numpy")}
        for name in ("anthropic", "google-genai", "xllamacpp", "scikit-learn", "xgboost", "torch", "transformers"):
            with contextlib.suppress(md.PackageNotFoundError):
                versions[name] = md.version(name)
        ledger.write_json(self.run_dir / ledger.MANIFEST_FILE, {
            "run_id": self.run_id,
            # what the user set; every default is in GridConfig, and what each proposer really sends is below
            "config": self.config.model_dump(mode="json", exclude_defaults=True),
            # the template's text and digest: the run id is derived from them, not from the file's path
            "prompt_template": self.config.template_record(),
            "methods": [{"label": m.resolved_label, "method": m.method, "n_train": m.n_train} for m in self.methods],
            "proposers": self.providers,
            "selection_rule": self.rule.name,
            "sandbox": self.sandbox.mode if self.sandbox else None,
            "sandbox_fallback_reason": self.sandbox.fallback_reason if self.sandbox else None,
            "sandbox_bounds": getattr(self.sandbox, "bounds", None),
            "cells": _union_cells(previous.get("cells", []), self.work()),
            "trials_per_cell": self.config.trials,
            "versions": {"llm_erm": llm_erm.__version__, "python": platform.python_version(), **versions},
            "argv": sys.argv,
            "host": platform.node(),
            "prefect": previous.get("prefect") if self.hooks.prefect() is None else self.hooks.prefect(),
            "created_at": previous.get("created_at", datetime.now(UTC).isoformat()),
            "updated_at": datetime.now(UTC).isoformat(),
        })

    # -- the run ------------------------------------------------------------------------------------
    def prepare(self, spec: DatasetSpec, with_prompt: bool = True) -> Cell:
        """A dataset (built, or verified and reused) and, for erm, its prompt."""
        label = cell_label(spec)

        def prepare() -> Cell:
            dataset = _load(spec, Path(self.config.datasets_dir).expanduser())  # ~: each worker's own
            prompt = self.plan.erm_prompt(dataset) if with_prompt else None
            if prompt is not None:
                store_prompt(self.run_dir, prompt)  # once per run; the rows keep its hash
            return Cell(spec, dataset, prompt)

        # one step (one task run under Prefect) per cell: generate the dataset, then build the prompt
        cell = self.hooks.step("prepare", f"prepare {label}{_size_suffix(spec, self.config)}", prepare)
        self.hooks.event(Event("cell", label, f"dataset {cell.dataset.path}"))
        return cell

    def run(self, todo: Sequence[Work]) -> GridResult:
        """Every trial in `todo`: datasets are prepared on a small pool and each one's trials start on the
        trial pool as soon as it is ready, in grid order; `concurrency` bounds the trials in flight."""
        if self.config.proposer.batch:  # OpenAI's Batch API: erm's attempts in waves (llm_erm/engine/batch.py)
            from llm_erm.engine.batch import run_batched

            result = run_batched(self, [w for w in todo if w.method.method == ERM])
            others = [w for w in todo if w.method.method != ERM]
            if others and not result.interrupted:
                rest = self._run(others)
                result.trials += rest.trials
                result.errors += rest.errors
                result.interrupted = rest.interrupted
            result.pending_before = len(todo)
            return result
        return self._run(todo)

    def _run(self, todo: Sequence[Work]) -> GridResult:
        result = GridResult(self.run_id, self.run_dir, pending_before=len(todo))
        specs = list(dict.fromkeys(w.spec for w in todo))
        needs_prompt = {w.spec for w in todo if w.method.method == ERM}
        prep = ThreadPoolExecutor(PREP_WORKERS, thread_name_prefix="llm-erm-prep")
        pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="llm-erm-trial")
        prepared = [submit(prep, self.prepare, spec, spec in needs_prompt) for spec in specs]
        running: dict[Future, str] = {}
        interrupted = True
        try:
            for spec, ready in zip(specs, prepared, strict=True):
                try:
                    cell = ready.result()
                except Exception as exc:  # noqa: BLE001 - one broken cell must not sink the grid
                    result.errors.append(f"{cell_label(spec)}: {type(exc).__name__}: {exc}")
                    self.hooks.event(Event("failed", cell_label(spec), result.errors[-1]))
                    continue
                for work in (w for w in todo if w.spec == spec):
                    running[submit(pool, self.trial, cell, work)] = self.trial_label(work)
            for future in _as_completed(running):
                try:
                    result.trials.append(future.result())
                except Interrupted:
                    result.interrupted = True
                except Exception as exc:  # noqa: BLE001 - the trial stays pending; a re-run retries it
                    if disk_failure(exc):  # a full or read-only disk fails every trial after it, paid calls too
                        raise
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

    def generalize(self) -> None:
        """Score the selected erm programs at config.generalize_lengths (generalization.parquet)."""
        from llm_erm.analysis.generalize import generalize_run

        cfg = self.config
        # the grid's own sandbox pool, with the run's bounds: no second pool of workers while it is open
        self.hooks.step("generalize", "generalize", lambda: generalize_run(
            self.run_dir, cfg.generalize_lengths, datasets_dir=Path(cfg.datasets_dir).expanduser(), sandbox_mode=cfg.sandbox,
            time_per_input_s=cfg.candidate_timeout_s, memory_mb=cfg.candidate_memory_mb, sandbox=self.sandbox))

    # -- one trial ----------------------------------------------------------------------------------
    def trial_label(self, work: Work) -> str:
        prefix = f"{work.label} " if self.several else ""
        return f"{prefix}{cell_label(work.spec)} t{work.trial}"

    def trial(self, cell: Cell, work: Work) -> TrialResult:
        from llm_erm.engine import methods

        label = self.trial_label(work)
        body = methods.get_kind(work.method.method).trial
        result = self.hooks.step("trial", f"trial {label}", lambda: self._write(cell, work, body))
        self.hooks.event(Event("trial", label, result.failure or "", {"result": result}))
        return result

    def _write(self, cell: Cell, work: Work, body: Callable[[GridRun, Cell, Work, dict], list[dict]]) -> TrialResult:
        """Run a trial's body under its claim and running marker and write its rows as one ledger file."""
        claim = self._claim(work)
        if claim is None:  # another process of the run finished it meanwhile: its rows are the trial's
            rows = ledger.read_table(ledger.trial_path(self.run_dir, *work.key)).to_pylist()
            return TrialResult(work.spec.target, work.spec.length, work.trial, rows, work.label)
        identity = self.identity(cell, work)
        try:
            with running_marker(self.run_dir, *work.key):
                rows = body(self, cell, work, identity)
                self._check_claim(work)
                ledger.write_trial(self.run_dir, *work.key, rows)
        finally:
            self._held.pop(work.key, None)
            self.claims.release(claim)
        return TrialResult(work.spec.target, work.spec.length, work.trial, rows, work.label)

    def _claim(self, work: Work) -> Claim | None:
        """Claim the trial, waiting while another live process holds it; None when it got done meanwhile.
        A fresh claim reads the journal again: a killed holder's answers are reused, never bought twice."""
        delay = 0.5
        while True:
            claim = self.claims.try_claim(work.key)
            if trial_done(self.run_dir, *work.key):  # done elsewhere (before or since our look at the claims)
                if claim is not None:
                    self.claims.release(claim)
                return None
            if claim is not None:
                self.journal.refresh()
                self._held[work.key] = claim
                return claim
            if self.stop.wait(delay):
                raise Interrupted("the run is stopping")
            delay = min(delay * 1.5, 5.0)

    def _check_claim(self, work: Work) -> None:
        claim = self._held.get(work.key)
        if claim is not None and claim.lost.is_set():
            raise ClaimLost(f"another worker took {self.trial_label(work)} over (this one stalled past the lease)")

    def erm_trial(self, cell: Cell, work: Work, identity: dict[str, Any]) -> list[dict[str, Any]]:
        """Propose, verify and select, attempt by attempt (or wave by wave), until the rule calls it solved."""
        cfg = self.config
        rows: list[dict[str, Any]] = []
        for wave in waves(cfg.attempts, cfg.wave_size):
            if len(wave) == 1:
                rows.append(self.attempt(cell, work, wave.start, identity))
            else:
                futures = [submit(self.waves(), self.attempt, cell, work, a, identity) for a in wave]
                rows += [f.result() for f in futures]
            if trial_over(rows, wave, cfg.attempts, self.rule, identity):
                break
        return finish_trial(rows, cfg.attempts, self.rule)

    def attempt(self, cell: Cell, work: Work, attempt: int, identity: dict[str, Any]) -> dict[str, Any]:
        """Propose (or find the answer in the journal), verify, and return the attempt's row."""
        from llm_erm.verify import verify_candidate

        label = f"{self.trial_label(work)} a{attempt}"
        proposer = self.proposers[work.label]
        call = request(self.run_id, work, self.providers[work.label], cell.prompt_sha256, attempt)
        seed = call.seed
        answer, reused = self.journal.lookup(call.key), True
        if answer is None:
            reused = False
            self._check_claim(work)
            asked = ProposeRequest(prompt=cell.prompt, trial=work.trial, attempt=attempt, seed=seed)
            answer = self.call(label, lambda: proposer.propose(asked), call.key, call.record)
            if isinstance(answer, str):  # skipped for budget, or the call failed: the row says which
                row = attempt_row(identity=identity, attempt=attempt, skipped=answer == SKIPPED_BUDGET,
                                  propose_error=None if answer == SKIPPED_BUDGET else answer)
                if isinstance(answer, _Unstorable):  # paid for: recorded once, never bought again by a resume
                    row["status"] = UNSTORABLE
                self.hooks.event(Event("attempt", label, row.get("propose_error") or "skipped: budget spent",
                                       {"row": row}))
                return {**row, "seed": seed}
        verdict = verify_candidate(answer["text"], cell.dataset, self.sandbox, sanitize=self.config.sanitize)
        row = attempt_row(identity=identity, attempt=attempt, proposal=answer, verdict=verdict.to_row(),
                          reused=reused)
        row["seed"] = seed
        self.hooks.event(Event("attempt", label, _describe(row), {"row": row}))
        return row

    def call(self, label: str, make_call: Callable[[], Any], key: str, record: dict[str, Any]) -> dict | str:
        """One model call under a call slot, the budget and the retry policy; its answer journaled.

        Returns the journal record of the answer (`record` plus what the call returned), SKIPPED_BUDGET when
        the budget was spent before the call could start, or the error (one line) when it failed after its
        retries. The budget is checked and the answer journaled while holding the slot, so a call that
        waited for a slot sees the spend of every call before it, on every worker."""
        if self.stop.is_set():
            raise Interrupted("the run is stopping")
        with self._slots, self.hooks.call_slot():
            if self.budget.exhausted():
                return SKIPPED_BUDGET
            try:
                answer = call_with_retries(
                    make_call, self.policy, self.stop,
                    on_retry=lambda n, delay, exc: self.hooks.event(Event(
                        "retry", label, f"retry {n}/{self.policy.retries} in {delay:.1f} s: {exc}")),
                )
            except ProposerError as exc:
                return f"{type(exc).__name__}: {exc}"
            except (Interrupted, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - a client's own bug fails its call, not the grid
                return f"{type(exc).__name__} in the model client: {exc}"
            try:
                return self.journal.append(key, {**record, **answer.to_dict()})
            except Exception as exc:  # noqa: BLE001 - an answer that cannot be stored fails its attempt, recorded
                return _Unstorable(f"the answer could not be journaled ({type(exc).__name__}: {exc})")

    def identity(self, cell: Cell, work: Work) -> dict[str, Any]:
        """The columns every row of the trial shares."""
        provider = self.providers.get(work.label) or self.methods_ready[work.label].identity()
        return {
            "run_id": self.run_id,
            "method": work.method.method,
            "method_label": work.label,
            "target": work.spec.target,
            "target_name": cell.dataset.target.name,
            "length": work.spec.length,
            "trial": work.trial,
            "n_train": work.spec.train_size + (0 if work.method.method == ERM else work.spec.val_size),
            "dataset_id": cell.dataset.dataset_id,
            "dataset_path": str(cell.dataset.path),
            "protocol": cell.spec.protocol if cell.dataset.target.table else None,
            "proposer": provider.get("provider", work.method.method),
            "model": provider.get("model") or provider.get("provider") or work.method.method,  # enumerate: "enumerate"
            "base_url": provider.get("base_url"),
            "request_params": request_params_json(provider),
            "tools": ",".join(provider.get("tools") or []) or None,
            "prompt_variant": self.config.prompt_variant if work.method.method == ERM else None,
            "prompt": None,  # stored once under prompts/<prompt_sha256>.txt (llm_erm.results.prompts)
            "prompt_sha256": cell.prompt_sha256 if work.method.method == ERM else None,
        }

    def waves(self) -> ThreadPoolExecutor:
        """A shared pool for the calls a trial makes at once (erm waves, icl's test prompts)."""
        with self._pool_lock:
            if self._wave_pool is None:
                workers = self.config.concurrency * max(self.config.wave_size, 2)
                self._wave_pool = ThreadPoolExecutor(workers, thread_name_prefix="llm-erm-calls")
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
        if config.generalize_lengths and not result.interrupted:
            run.generalize()
    if config.analyze and not result.interrupted:
        from llm_erm.analysis import analyze_run

        analysis = analyze_run(result.run_dir, datasets_dir=config.datasets_dir)
        if not analysis.ok:
            result.analysis_error = (f"the leakage check failed ({len(analysis.leakage.leaks)} finding(s)): "
                                     f"see {analysis.report_path}")
    return result


def run_trial(config: GridConfig, target: str, length: int, trial: int = 1, method: str | None = None,
              hooks: Hooks | None = None) -> TrialResult:
    """One trial of one of the grid's cells (and methods: the grid's first by default), in the grid's own run:
    the same run id, ledger and journal as `run_grid(config)`. A finished trial is read back from the ledger,
    not run again; an unfinished one reuses every answer the journal holds."""
    with GridRun(config, hooks) as run:
        chosen = next((m for m in run.methods if method in (None, m.resolved_label)), None)
        if chosen is None:
            raise UsageError(f"no method {method!r} in this grid: use one of "
                             f"{', '.join(m.resolved_label for m in run.methods)}")
        spec = next((s for s in run.specs if (s.target, s.length) == (target, length)), None)
        if spec is None or not 1 <= trial <= run.config.trials:
            cells = ", ".join(cell_label(s) for s in run.specs)
            raise UsageError(f"{target} L{length} trial {trial} is not in this grid (cells: {cells}; trials "
                             f"1..{run.config.trials}): add it to the config's functions, lengths or trials")
        work = Work(chosen, method_spec(chosen, spec), trial)
        if work not in run.pending([spec]):  # done: its rows, as the ledger holds them
            import pyarrow.parquet as pq

            rows = pq.read_table(ledger.trial_path(run.run_dir, *work.key)).to_pylist()
            return TrialResult(spec.target, spec.length, trial, rows, work.label)
        run.write_manifest()
        return run.trial(run.prepare(work.spec, chosen.method == ERM), work)


# -- helpers ----------------------------------------------------------------------------------------
def _union_cells(previous: list[dict], work: Sequence[Work]) -> list[dict]:
    """The cells of this run so far: an erm-cell flow run adds its own, never drops the grid's others."""
    cells = {(c.get("method_label", ERM), c["target"], c["length"]): c for c in previous}
    cells.update({(w.label, w.spec.target, w.spec.length): {
        "method_label": w.label, "method": w.method.method, "target": w.spec.target, "length": w.spec.length,
        "dataset_id": w.spec.dataset_id} for w in work})
    return sorted(cells.values(), key=lambda c: (c["method_label"], c["target"], c["length"]))


def check_datasets(manifest: dict[str, Any], work: Sequence[Work]) -> None:
    """Every worker builds its own datasets (they are deterministic); one that would learn from other data than
    the run recorded (another generator version, another seed) is refused, naming the target and both ids."""
    recorded = {(c.get("method_label"), c["target"], c["length"]): c.get("dataset_id")
                for c in manifest.get("cells", []) if c.get("dataset_id")}
    for w in work:
        was = recorded.get((w.label, w.spec.target, w.spec.length))
        if was is not None and was != w.spec.dataset_id:
            raise UsageError(f"{w.label} {cell_label(w.spec)}: this worker's dataset is {w.spec.dataset_id} but the "
                             f"run recorded {was}: run every worker of a run on the same llm-erm version and config")


def _load(spec: DatasetSpec, datasets_dir: Path) -> Dataset:
    """The dataset, its splits parsed here (on the preparation pool) rather than by the first attempt."""
    dataset = build_dataset(spec, datasets_dir)
    for name in ("train", "val", "test"):
        dataset.split(name).label_marks  # noqa: B018 - computed once, used by every attempt's scoring
    return dataset


def _size_suffix(spec: DatasetSpec, config: GridConfig) -> str:
    same = (spec.train_size, spec.val_size) == (config.train_size, config.val_size)
    return "" if same else f" n{spec.train_size + spec.val_size}"


class _Unstorable(str):
    """The error of an answer that arrived but could not be journaled."""


def _as_completed(futures: dict[Future, str]):
    pending_futures = set(futures)
    while pending_futures:
        done, pending_futures = wait(pending_futures, return_when=FIRST_COMPLETED)
        yield from done


def _describe(row: dict[str, Any]) -> str:
    def num(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    cost = "" if row.get("cost_usd") is None else f", ${row['cost_usd']:.4f}"
    reused = " (answer from the journal)" if row.get("reused_answer") else ""
    return (f"{row['status']}: val {num(row.get('val_acc'))} test {num(row.get('test_acc'))}, "
            f"{row.get('latency_s') or 0:.1f} s{cost}{reused}")


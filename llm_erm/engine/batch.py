"""A grid through OpenAI's Batch API: the attempts in waves, at half price, resumable after any kill.

Wave w holds attempt w (with `wave_size` > 1: the w-th group of attempts) of every trial still searching, so
a trial that the selection rule calls solved drops out of the next wave exactly as it stops early in a
plain run. The requests of a wave that have no answer in the journal yet go to the Batch API as one job
(one JSONL file of lines whose body is what a plain call would send, seed included; custom_id = the
request's journal key), and:

- the batch id is journaled ({"kind": "batch", "batch_id", "requests": [keys], ...}) the moment the batch
  is created, so a run killed while it waits resumes that batch instead of submitting (and paying) again;
  a kill in the instant between the creation and that record is covered too: before creating a batch the
  run looks for one it created already (its metadata names the run and a hash of the requests);
- the batch is polled every `batch_poll_s`; when it ends, every answer is journaled under the same key a
  plain call would use, priced at the batch rate (half the list price), and a {"kind": "batch_end"}
  record says which requests got none (they fail their attempts now; a re-run submits them again);
- the answers are verified and the rows written as a plain run writes them (GridRun.attempt reads them
  back from the journal), and each trial is written to the ledger when it ends.

The budget is checked before each wave is submitted. A wave's rows equal a plain run's rows for the same
answers, so the ledger equals a plain run's (latency and cost aside).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from llm_erm.engine.calls import Request, request
from llm_erm.engine.hooks import Event
from llm_erm.engine.results import GridResult, TrialResult
from llm_erm.engine.retry import Interrupted, call_with_retries
from llm_erm.engine.waves import trial_over, waves
from llm_erm.errors import UsageError
from llm_erm.proposers import ProposeRequest, ProposerError
from llm_erm.results import ledger
from llm_erm.results.progress import running_marker
from llm_erm.results.rows import attempt_row, finish_trial

if TYPE_CHECKING:
    from llm_erm.engine.run import Cell, GridRun
    from llm_erm.plan import Work

T = TypeVar("T")
BATCH, BATCH_END = "batch", "batch_end"  # the journal records of this module
COMPLETION_WINDOW = "24h"  # the only one the Batch API offers
FINAL = ("completed", "failed", "expired", "cancelled")
SKIP = object()  # a request not submitted: the budget was reached
FIND_LIMIT = 200  # batches looked at when checking for one created just before a kill


@dataclass
class _Trial:
    cell: Cell
    work: Work
    identity: dict[str, Any]
    label: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    marker: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    done: bool = False

    @property
    def trial(self) -> int:
        return self.work.trial


@dataclass(frozen=True)
class _Job:
    """One attempt of one trial in a wave: the same request (key, seed, record) a plain call would make."""

    trial: _Trial
    attempt: int
    call: Request

    @property
    def key(self) -> str:
        return self.call.key

    @property
    def seed(self) -> int:
        return self.call.seed

    def describe(self) -> dict[str, Any]:
        """What the journal's batch record keeps of the job, to journal its answer in any later session."""
        return self.call.describe()


def supports_batch(proposer: Any) -> bool:
    return all(hasattr(proposer, name) for name in ("batch_body", "batch_upload", "batch_create", "batch_list",
                                                    "batch_retrieve", "batch_file_text", "proposal_from_body",
                                                    "batch_endpoint"))


def run_batched(run: GridRun, todo: Sequence[Work]) -> GridResult:
    """Every erm trial in `todo`, its attempts submitted wave by wave as Batch API jobs (one wave loop per erm
    method, each with its own proposer)."""
    result = GridResult(run.run_id, run.run_dir, pending_before=len(todo))
    for label in dict.fromkeys(w.label for w in todo):
        part = _run_label(run, [w for w in todo if w.label == label])
        result.trials += part.trials
        result.errors += part.errors
        result.interrupted = result.interrupted or part.interrupted
        if result.interrupted:
            break
    return result


def _run_label(run: GridRun, todo: Sequence[Work]) -> GridResult:
    label = todo[0].label
    proposer = run.proposers[label]
    if not supports_batch(proposer):
        raise UsageError(f"--batch needs a proposer that speaks the Batch API (openai-responses, openai-chat), "
                         f"not {proposer.kind!r}: drop --batch")
    cfg = run.config
    result = GridResult(run.run_id, run.run_dir, pending_before=len(todo))
    cells: dict[Any, Cell] = {}
    for spec in dict.fromkeys(w.spec for w in todo):
        try:
            cells[spec] = run.prepare(spec, True)
        except Exception as exc:  # noqa: BLE001 - one broken cell must not sink the grid
            result.errors.append(f"{spec.target} L{spec.length}: {type(exc).__name__}: {exc}")
            run.hooks.event(Event("failed", f"{spec.target} L{spec.length}", result.errors[-1]))
    trials = [_Trial(cells[w.spec], w, run.identity(cells[w.spec], w), run.trial_label(w))
              for w in todo if w.spec in cells]
    batches = _Batches(run, label)
    verify = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix="llm-erm-verify")

    def job(trial: _Trial, attempt: int) -> _Job:
        return _Job(trial, attempt, request(run.run_id, trial.work, run.providers[label], trial.cell.prompt_sha256,
                                            attempt))

    def finish(trial: _Trial) -> None:
        rows = finish_trial(trial.rows, cfg.attempts, run.rule)
        ledger.write_trial(run.run_dir, *trial.work.key, rows)
        trial.done = True
        trial.marker.close()
        spec = trial.cell.spec
        outcome = TrialResult(spec.target, spec.length, trial.trial, rows, label)
        result.trials.append(outcome)
        run.hooks.event(Event("trial", trial.label, outcome.failure or "", {"result": outcome}))

    try:
        for trial in trials:
            trial.marker.enter_context(running_marker(run.run_dir, *trial.work.key))
        for wave in waves(cfg.attempts, cfg.wave_size):  # the plain loop's waves, of every trial at once
            active = [t for t in trials if not t.done]
            if not active:
                break
            jobs = [job(t, a) for t in active for a in wave]
            name = f"wave {wave.start}" if len(wave) == 1 else f"wave {wave.start}-{wave[-1]}"
            failures, fresh = batches.fetch(jobs, name)
            rows = list(verify.map(_row, [run] * len(jobs), jobs, [failures] * len(jobs), [fresh] * len(jobs)))
            for one, row in zip(jobs, rows, strict=True):
                one.trial.rows.append(row)
            for trial in active:
                if trial_over(trial.rows, wave, cfg.attempts, run.rule, trial.identity):
                    finish(trial)
    except Interrupted:
        result.interrupted = True
    finally:
        verify.shutdown(wait=False, cancel_futures=True)
        for trial in trials:
            trial.marker.close()
    result.interrupted = result.interrupted or run.stop.is_set()
    return result


def _row(run: GridRun, job: _Job, failures: dict[str, Any], fresh: set[str]) -> dict[str, Any]:
    """The attempt's row: verified from the journal, or why it has no answer."""
    trial = job.trial
    failure = failures.get(job.key)
    if failure is None and run.journal.lookup(job.key) is None:
        failure = "the batch returned no answer for this request"
    if failure is SKIP:
        return attempt_row(identity=trial.identity, attempt=job.attempt, skipped=True)
    if failure is not None:
        row = {**attempt_row(identity=trial.identity, attempt=job.attempt, propose_error=failure), "seed": job.seed}
        run.hooks.event(Event("attempt", f"{trial.label} a{job.attempt}", f"call failed: {failure}", {"row": row}))
        return row
    row = run.attempt(trial.cell, trial.work, job.attempt, trial.identity)  # finds the answer in the journal
    if job.key in fresh:
        row["reused_answer"] = False  # it arrived in this session, by batch
    return row


class _Batches:
    """The client side of the Batch API for one run: find, submit, poll and read back batches."""

    def __init__(self, run: GridRun, label: str):
        self.run = run
        self.label = label
        self.proposer: Any = run.proposers[label]
        self.cfg = self.proposer.cfg

    # -- one wave ---------------------------------------------------------------------------------
    def fetch(self, jobs: list[_Job], label: str) -> tuple[dict[str, Any], set[str]]:
        """Get every job's answer into the journal. Returns (key -> why it has none, or SKIP; the keys
        whose answers arrived now)."""
        journal = self.run.journal
        journal.refresh()
        needed = {j.key: j for j in jobs if journal.lookup(j.key) is None}
        failures: dict[str, Any] = {}
        fresh: set[str] = set()
        for record in self._open_batches(set(needed)):  # submitted before (by a killed run): resume them
            self._finish(record, failures, fresh)
        needed = {k: j for k, j in needed.items() if journal.lookup(k) is None and k not in failures}
        if not needed:
            return failures, fresh
        if self.run.budget.exhausted():
            return {**failures, **dict.fromkeys(needed, SKIP)}, fresh
        try:
            record = self._submit(list(needed.values()), label)
        except ProposerError as exc:
            message = f"{type(exc).__name__}: submitting the batch failed: {exc}"
            return {**failures, **dict.fromkeys(needed, message)}, fresh
        self._finish(record, failures, fresh)
        return failures, fresh

    def _open_batches(self, keys: set[str]) -> list[dict[str, Any]]:
        """Journaled batches that have not ended and hold some of these requests, oldest first."""
        records = list(self.run.journal.records())
        ended = {r.get("batch_id") for r in records if r.get("kind") == BATCH_END}
        return [r for r in records if r.get("kind") == BATCH and r.get("batch_id") not in ended
                and keys & set(r.get("requests", ()))]

    # -- submitting -------------------------------------------------------------------------------
    def _submit(self, jobs: list[_Job], label: str) -> dict[str, Any]:
        proposer = self.proposer
        endpoint = proposer.batch_endpoint
        tag = hashlib.sha256("\n".join(sorted(j.key for j in jobs)).encode()).hexdigest()[:32]
        metadata = {"llm_erm_run": self.run.run_id[:512], "llm_erm_requests": tag}
        batch = self._find_created(metadata)
        if batch is None:
            lines = [{"custom_id": j.key, "method": "POST", "url": endpoint,
                      "body": self.proposer.batch_body(ProposeRequest(prompt=j.trial.cell.prompt, trial=j.trial.trial,
                                                                      attempt=j.attempt, seed=j.seed))}
                     for j in jobs]
            data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
            file_id = self._call("upload the batch input", lambda: proposer.batch_upload(f"llm-erm-{tag}.jsonl", data))
            retried = [False]

            def create() -> Any:
                # A retry after a timeout may find the batch the first try created: never create it twice.
                if retried[0] and (found := self._find_created(metadata)) is not None:
                    return found
                retried[0] = True
                return proposer.batch_create(file_id, metadata, COMPLETION_WINDOW)

            batch = self._call("create the batch", create)
        record = self.run.journal.append(f"batch:{batch.id}", {
            "kind": BATCH, "run_id": self.run.run_id, "batch_id": batch.id, "input_file_id": batch.input_file_id,
            "endpoint": endpoint, "tag": tag, "requests": [j.key for j in jobs],
            "jobs": {j.key: j.describe() for j in jobs},
        })
        self.run.hooks.event(Event("batch", label, f"batch {batch.id} submitted: {len(jobs)} request(s)"))
        return record

    def _find_created(self, metadata: dict[str, str]) -> Any | None:
        """A batch with this metadata that the journal does not know yet (created just before a kill)."""
        known = {r.get("batch_id") for r in self.run.journal.records() if r.get("kind") == BATCH}
        for batch in self._call("list batches", lambda: self.proposer.batch_list(FIND_LIMIT)):
            if (batch.metadata or {}) == metadata and batch.id not in known:
                return batch
        return None

    # -- waiting and reading back ------------------------------------------------------------------
    def _finish(self, record: dict[str, Any], failures: dict[str, Any], fresh: set[str]) -> None:
        """Poll a batch until it ends, journal its answers, and note the requests it did not answer."""
        batch_id = record["batch_id"]
        started = time.monotonic()
        try:
            batch = self._poll(batch_id)
            mine = self._ingest(record, batch, started, fresh)
        except ProposerError as exc:
            # Not ended as far as we know: no batch_end record, so a re-run polls it again (never resubmits).
            message = f"{type(exc).__name__}: batch {batch_id} could not be read: {exc}; re-run to pick it up"
            failures.update({key: message for key in record["requests"] if self.run.journal.lookup(key) is None})
            return
        failures.update(mine)
        self.run.journal.append(f"batch-end:{batch_id}", {
            "kind": BATCH_END, "run_id": self.run.run_id, "batch_id": batch_id, "status": batch.status,
            "failed": mine, "request_counts": _counts(batch),
        })

    def _poll(self, batch_id: str) -> Any:
        last = None
        while True:
            batch = self._call("check the batch", lambda: self.proposer.batch_retrieve(batch_id))
            state = (batch.status, json.dumps(_counts(batch), sort_keys=True))
            if state != last:
                self.run.hooks.event(Event("batch", batch_id, f"batch {batch_id}: {batch.status} {_counts(batch)}"))
                last = state
            if batch.status in FINAL:
                return batch
            if self.run.stop.wait(self.cfg.batch_poll_s):
                raise Interrupted("the run is stopping (the batch stays journaled: a re-run picks it up)")

    def _ingest(self, record: dict[str, Any], batch: Any, started: float,
                fresh: set[str]) -> dict[str, str]:
        journal = self.run.journal
        jobs: dict[str, dict[str, Any]] = record["jobs"]
        if isinstance(batch.created_at, int) and isinstance(batch.completed_at, int):
            latency = float(batch.completed_at - batch.created_at)
        else:
            latency = time.monotonic() - started
        failures: dict[str, str] = {}
        answered: set[str] = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            text = self._call("download the batch results", lambda fid=file_id: self.proposer.batch_file_text(fid))
            for line in text.splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                key = item.get("custom_id") if isinstance(item, dict) else None
                if key not in jobs:
                    continue
                response = item.get("response") or {}
                body = response.get("body")
                if response.get("status_code") == 200 and isinstance(body, dict):
                    if journal.lookup(key) is None:
                        try:
                            proposal = self.proposer.proposal_from_body(body, latency, {"batch_id": batch.id})
                        except Exception as exc:  # noqa: BLE001 - a malformed line fails its attempt only
                            failures[key] = f"batch {batch.id}: malformed response ({type(exc).__name__}: {exc})"
                            continue
                        journal.append(key, {"kind": "answer", "run_id": self.run.run_id, **jobs[key],
                                             "provider": self.run.providers[self.label], **proposal.to_dict()})
                        fresh.add(key)
                    answered.add(key)
                else:
                    failures[key] = _line_error(batch.id, item)
        for key in jobs:
            if key not in answered and key not in failures and journal.lookup(key) is None:
                failures[key] = f"batch {batch.id} ended {batch.status} without an answer for this request"
        return failures

    # -- calls ------------------------------------------------------------------------------------
    def _call(self, what: str, call: Callable[[], T]) -> T:
        """One Batch API operation of the proposer (its failures are ProposerErrors naming `what`), with the
        run's retries."""
        return call_with_retries(call, self.run.policy, self.run.stop, on_retry=lambda n, delay, exc: self.run.hooks.event(
            Event("retry", "batch", f"{what}: retry {n}/{self.run.policy.retries} in {delay:.1f} s: {exc}")))


def _counts(batch: Any) -> dict[str, int]:
    counts = getattr(batch, "request_counts", None)
    return {name: int(getattr(counts, name, 0) or 0) for name in ("total", "completed", "failed")}


def _line_error(batch_id: str, item: dict[str, Any]) -> str:
    """One line naming why a batch line has no answer."""
    response = item.get("response") or {}
    error = item.get("error") or {}
    body = response.get("body") if isinstance(response.get("body"), dict) else {}
    inner = body.get("error") if isinstance(body.get("error"), dict) else {}
    status = response.get("status_code")
    message = inner.get("message") or error.get("message") or "no message"
    code = inner.get("code") or error.get("code")
    head = f"HTTP {status}" if status else (code or "error")
    return f"batch {batch_id}: {head}: {message}"

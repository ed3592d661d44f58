"""Where a run stands, read from its ledger alone: finished, partial, skipped, failed and missing trials.

A cell of the status table is (method label, target, length); the manifest lists them.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llm_erm.results import ledger, storage
from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET

UNFINISHED = frozenset((SKIPPED_BUDGET, PROPOSE_ERROR))  # a re-run makes these calls again


def _trial_statuses(path: Path) -> list[str]:
    return ledger.read_table(path, columns=["status"]).column("status").to_pylist()


def trial_done(run_dir: Path, label: str, target: str, length: int, trial: int) -> bool:
    """A trial is done when its file exists and every attempt got its answer: an attempt skipped for budget
    (a bigger budget resumes it) or whose call failed after its retries is made again by a re-run."""
    path = ledger.trial_path(run_dir, label, target, length, trial)
    try:  # one read, no existence check first: on an object store that is one request, not three
        return not UNFINISHED.intersection(_trial_statuses(path))
    except FileNotFoundError:
        return False


def pending(run_dir: Path, keys: Iterable[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    """The (label, target, length, trial) keys among `keys` that are not done (one listing of the ledger, then
    only the files that exist are read)."""
    present = ledger.finished_trials(run_dir)
    return [key for key in keys if key not in present
            or UNFINISHED.intersection(_trial_statuses(ledger.trial_path(run_dir, *key)))]


def run_is_complete(run_dir: Path, keys: Iterable[tuple[str, str, int, int]], with_report: bool) -> bool:
    """Every trial is done, and the summary (and the report, when asked for) is newer than all of them."""
    if pending(run_dir, keys):
        return False
    newest = max((p.stat().st_mtime for p in ledger.trial_files(run_dir)), default=0)
    outputs = [run_dir / ledger.SUMMARY_FILE] + ([run_dir / ledger.REPORT_DIR / "report.html"] if with_report else [])
    return all(p.exists() and p.stat().st_mtime >= newest for p in outputs)


@dataclass(frozen=True)
class CellStatus:
    method_label: str
    target: str
    length: int
    state: str  # done | partial | running | failed | skipped_budget | missing
    trials_done: int
    trials: int
    failed_attempts: int = 0  # attempts whose call failed after its retries


def cell_statuses(run_dir: Path) -> list[CellStatus]:
    """Every cell the manifest names, with its state; `failed` = some call of a trial failed after its retries
    (a re-run makes exactly those calls again)."""
    manifest = ledger.read_manifest(run_dir)
    trials = int(manifest.get("trials_per_cell", 1))
    out = []
    for cell in manifest.get("cells", []):
        label, target, length = cell.get("method_label", "erm"), cell["target"], int(cell["length"])
        paths = [ledger.trial_path(run_dir, label, target, length, t) for t in range(1, trials + 1)]
        statuses = [_trial_statuses(p) if p.exists() else None for p in paths]
        done = sum(1 for s in statuses if s is not None and not UNFINISHED.intersection(s))
        failed = sum(s.count(PROPOSE_ERROR) for s in statuses if s is not None)
        if failed:
            state = "failed"
        elif any(s is not None and SKIPPED_BUDGET in s for s in statuses):
            state = "skipped_budget"
        elif done == trials:
            state = "done"
        elif any(_running(run_dir, (label, target, length, t), p) for t, p in enumerate(paths, 1)):
            state = "running"
        elif done:
            state = "partial"
        else:
            state = "missing"
        out.append(CellStatus(label, target, length, state, done, trials, failed))
    return out


def _marker(trial_file: Path) -> Path:
    return trial_file.with_suffix(".running")


@contextmanager
def running_marker(run_dir: Path, label: str, target: str, length: int, trial: int) -> Iterator[None]:
    """Mark a trial as in flight (host and pid) while its body runs, for `llm-erm status`."""
    marker = _marker(ledger.trial_path(run_dir, label, target, length, trial))
    storage.write_bytes(marker, f"{platform.node()} {os.getpid()}".encode())
    try:
        yield
    finally:
        storage.delete(marker)


def _running(run_dir: Path, key: tuple[str, str, int, int], trial_file: Path) -> bool:
    """In flight: a trial's claim decides where it has one (its lease runs out when its worker dies, on any
    host); otherwise its running marker (trials of the Batch API path)."""
    from llm_erm.results.claims import Claims

    claims = Claims(run_dir)
    if claims.generations(key):
        return claims.holder(key) is not None
    return marker_alive(_marker(trial_file))


def marker_alive(marker: Path) -> bool:
    """A trial's running marker (`<host> <pid>`): a marker left by a killed process on this host does not
    count; one from another host does (its process cannot be checked from here)."""
    try:
        host, pid = marker.read_text(encoding="utf-8").split()
    except (OSError, ValueError):
        return False
    if host != platform.node():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


# ---- live progress of a run in this process: trials from the ledger, answers and spend from the journal ----

@dataclass(frozen=True)
class Snapshot:
    trials_done: int  # in the ledger, every session
    trials_total: int
    answers: int  # in the journal, every session
    answers_total: int  # at most (early stopping makes fewer)
    new_answers: int  # arrived in this session
    spend_usd: float  # every answer in the journal
    elapsed_s: float
    eta_s: float | None

    def line(self) -> str:
        """One log line: `progress: 3/12 trials, 14/60 answers (5 this session), $0.0123, ETA ~1m20s`."""
        eta = f", ETA ~{_duration(self.eta_s)}" if self.eta_s is not None else ""
        return (f"progress: {self.trials_done}/{self.trials_total} trials, {self.answers}/{self.answers_total} "
                f"answers ({self.new_answers} this session), ${self.spend_usd:.4f} spent, "
                f"{_duration(self.elapsed_s)} elapsed{eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunProgress:
    """Reads a run's progress as it happens: finished trials (the ledger) and answers with their cost (the
    journal, read incrementally: only the lines added since the last poll)."""

    def __init__(self, run_dir: Path, pending: Iterable[tuple[str, str, int, int]], answers_total: int):
        import time

        self.run_dir = run_dir if storage.is_remote(run_dir) else Path(run_dir)
        self.pending = set(pending)
        self.trials_total = len(ledger.finished_trials(self.run_dir) | self.pending)
        self.answers_total = answers_total
        self._offsets: dict[Path, int] = {}
        self._seen: set[str] = set()  # the journal's objects already counted (object stores)
        self._clock = time.monotonic
        self.answers = 0
        self.spend_usd = 0.0
        self.reused = 0  # answers already paid for that belong to trials still to do: not bought again
        for record in self._new_records():
            self._count(record)
            if (record.get("method"), record.get("target"), record.get("length"), record.get("trial")) in self.pending:
                self.reused += 1
        self.answers_before = self.answers
        self.trials_before = self.trials_total - len(self.pending)
        self.started = self._clock()

    def resume_line(self) -> str | None:
        """What a resume starts from (None for a fresh run)."""
        if not self.trials_before and not self.answers_before:
            return None
        return (f"resuming: {self.trials_before}/{self.trials_total} trials already done; {self.reused} answer(s) "
                f"already paid for are reused from the journal, not bought again")

    def _count(self, record: dict) -> None:
        if record.get("kind") in ("answer", "icl"):  # not the batch bookkeeping records
            self.answers += 1
            self.spend_usd += float(record.get("cost_usd") or 0.0)

    def _new_records(self) -> Iterator[dict]:
        import json

        from llm_erm.results.journal import JOURNAL_DIR, OBJECT_SUFFIX

        if storage.is_remote(self.run_dir):  # one object per answer: the ones not seen yet
            directory = self.run_dir / JOURNAL_DIR
            fresh = [n for n in storage.names(directory) if n.endswith(OBJECT_SUFFIX) and n not in self._seen]
            self._seen.update(fresh)
            for data in storage.read_many([directory / n for n in fresh]).values():
                try:
                    yield json.loads(data)
                except ValueError:
                    continue
            return
        for path in sorted((self.run_dir / JOURNAL_DIR).glob("*.jsonl")):
            offset = self._offsets.get(path, 0)
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    data = handle.read()
            except OSError:
                continue
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
            self._offsets[path] = offset + len(complete)
            for line in complete.splitlines():
                try:
                    yield json.loads(line)
                except ValueError:
                    continue

    def poll(self) -> Snapshot:
        for record in self._new_records():
            self._count(record)
        done = len(ledger.finished_trials(self.run_dir))
        elapsed = self._clock() - self.started
        new_trials, new_answers = done - self.trials_before, self.answers - self.answers_before
        eta = None
        if new_trials > 0:  # the rate this session keeps
            eta = (self.trials_total - done) * elapsed / new_trials
        elif new_answers > 0:
            eta = max(self.answers_total - self.answers, 0) * elapsed / new_answers
        return Snapshot(done, self.trials_total, self.answers, self.answers_total, new_answers, self.spend_usd,
                        elapsed, eta)

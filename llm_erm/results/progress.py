"""Where a run stands, read from its ledger alone: finished, partial, skipped and missing trials."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from llm_erm.results import ledger
from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET


def _trial_statuses(path: Path) -> list[str]:
    return pq.read_table(path, columns=["status"]).column("status").to_pylist()


UNFINISHED = frozenset((SKIPPED_BUDGET, PROPOSE_ERROR))  # a re-run makes these calls again


def trial_done(run_dir: Path, target: str, length: int, trial: int) -> bool:
    """A trial is done when its file exists and every attempt got its answer: an attempt skipped for budget
    (a bigger budget resumes it) or whose call failed after its retries is made again by a re-run."""
    path = ledger.trial_path(run_dir, target, length, trial)
    return path.exists() and not UNFINISHED.intersection(_trial_statuses(path))


def pending_trials(run_dir: Path, specs: list, trials: int) -> list[tuple]:
    return [
        (spec, t)
        for spec in specs
        for t in range(1, trials + 1)
        if not trial_done(run_dir, spec.target, spec.length, t)
    ]


def run_is_complete(run_dir: Path, specs: list, trials: int, with_report: bool) -> bool:
    """Every trial is done, and the summary (and the report, when asked for) is newer than all of them."""
    if pending_trials(run_dir, specs, trials):
        return False
    newest = max((p.stat().st_mtime for p in (run_dir / ledger.ATTEMPTS_DIR).glob("*/L*/trial*.parquet")), default=0)
    outputs = [run_dir / ledger.SUMMARY_FILE] + ([run_dir / ledger.REPORT_DIR / "report.html"] if with_report else [])
    return all(p.exists() and p.stat().st_mtime >= newest for p in outputs)


@dataclass(frozen=True)
class CellStatus:
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
        target, length = cell["target"], int(cell["length"])
        paths = [ledger.trial_path(run_dir, target, length, t) for t in range(1, trials + 1)]
        statuses = [_trial_statuses(p) if p.exists() else None for p in paths]
        done = sum(1 for s in statuses if s is not None and not UNFINISHED.intersection(s))
        failed = sum(s.count(PROPOSE_ERROR) for s in statuses if s is not None)
        if failed:
            state = "failed"
        elif any(s is not None and SKIPPED_BUDGET in s for s in statuses):
            state = "skipped_budget"
        elif done == trials:
            state = "done"
        elif any(_running(p) for p in paths):
            state = "running"
        elif done:
            state = "partial"
        else:
            state = "missing"
        out.append(CellStatus(target, length, state, done, trials, failed))
    return out


def _marker(trial_file: Path) -> Path:
    return trial_file.with_suffix(".running")


@contextmanager
def running_marker(run_dir: Path, target: str, length: int, trial: int) -> Iterator[None]:
    """Mark a trial as in flight (host and pid) while its body runs, for `llm-erm status`."""
    marker = _marker(ledger.trial_path(run_dir, target, length, trial))
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{platform.node()} {os.getpid()}", encoding="utf-8")
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def _running(trial_file: Path) -> bool:
    """A marker left by a killed process on this host does not count; one from another host does."""
    try:
        host, pid = _marker(trial_file).read_text(encoding="utf-8").split()
    except (FileNotFoundError, ValueError):
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

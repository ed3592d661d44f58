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

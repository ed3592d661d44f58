"""What a trial and a grid hand back to their caller (plain data over the ledger rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET


@dataclass
class TrialResult:
    """One finished trial: its attempt rows, as written to the ledger."""

    target: str
    length: int
    trial: int
    rows: list[dict[str, Any]]
    method_label: str = "erm"

    @property
    def label(self) -> str:
        prefix = "" if self.method_label == "erm" else f"{self.method_label} "
        return f"{prefix}{self.target} L{self.length} t{self.trial}"

    @property
    def failed_calls(self) -> int:
        return sum(row["status"] == PROPOSE_ERROR for row in self.rows)

    @property
    def skipped_budget(self) -> int:
        return sum(row["status"] == SKIPPED_BUDGET for row in self.rows)

    @property
    def complete(self) -> bool:
        """Every attempt got its answer; otherwise a re-run of the same run id makes the missing calls."""
        return not self.failed_calls and not self.skipped_budget

    @property
    def selected(self) -> dict[str, Any] | None:
        return next((row for row in self.rows if row.get("selected")), None)

    @property
    def solved(self) -> bool:
        """The trial's selection rule (the one its rows record) calls its selected attempt solved."""
        from llm_erm.results.selection import get_rule

        selected = self.selected
        return selected is not None and get_rule(selected.get("selection_rule") or "erm").solved(selected)

    @property
    def cost_usd(self) -> float:
        return sum(row.get("cost_usd") or 0.0 for row in self.rows)

    @property
    def failure(self) -> str | None:
        """Why this trial is not complete, in one line; None when it is."""
        if self.failed_calls:
            first = next(row["propose_error"] for row in self.rows if row["status"] == PROPOSE_ERROR)
            return f"{self.label}: {self.failed_calls} call(s) failed after their retries, e.g. {first}"
        return None

    def summary(self) -> dict[str, Any]:
        """A row of the live trials table."""
        selected = self.selected or {}
        return {
            "trial": self.label,
            "attempts": len(self.rows),
            "solved": self.solved,
            "selected val": selected.get("val_acc"),
            "selected test": selected.get("test_acc"),
            "failed calls": self.failed_calls,
            "cost $": round(self.cost_usd, 6),
        }


@dataclass
class GridResult:
    """What a run of a grid did in this session, and the run's per-cell summary (all sessions)."""

    run_id: str
    run_dir: Path
    trials: list[TrialResult] = field(default_factory=list)  # the trials run in this session
    errors: list[str] = field(default_factory=list)  # trials that could not finish at all (one line each)
    cells: list[dict[str, Any]] = field(default_factory=list)  # summary.parquet's rows
    pending_before: int = 0  # trials that were left to do when this session started
    interrupted: bool = False
    analysis_error: str | None = None  # the analysis failed the run (a leak), in one line

    @property
    def failed_calls(self) -> int:
        return sum(t.failed_calls for t in self.trials)

    @property
    def skipped_budget(self) -> int:
        return sum(t.skipped_budget for t in self.trials)

    @property
    def ok(self) -> bool:
        """Nothing failed: no call failed after its retries, no trial broke, nothing was interrupted, the
        analysis passed."""
        return not self.failed_calls and not self.errors and not self.interrupted and not self.analysis_error

    def permanent_error(self) -> str | None:
        """The first failed call whose cause retrying cannot fix (PermanentProposerError: a key refused, a model
        that does not exist), or None."""
        for trial in self.trials:
            for row in trial.rows:
                error = str(row.get("propose_error") or "")
                if row["status"] == PROPOSE_ERROR and error.startswith("PermanentProposerError"):
                    return error.removeprefix("PermanentProposerError: ")
        return None

    def failure_message(self) -> str | None:
        """One line that counts what failed and says how to retry; None when nothing did."""
        if self.ok:
            return None
        parts = []
        if self.failed_calls:
            trials = sum(1 for t in self.trials if t.failed_calls)
            parts.append(f"{self.failed_calls} model call(s) in {trials} trial(s) failed after their retries")
        if self.errors:
            parts.append(f"{len(self.errors)} trial(s) could not finish ({self.errors[0]})")
        if self.interrupted:
            parts.append("the run was interrupted")
        if self.analysis_error:
            parts.append(self.analysis_error)
        permanent = self.permanent_error()
        if permanent is not None:  # a 401, 403 or unknown model: the same command would fail the same way
            return (f"run {self.run_id}: " + "; ".join(parts) + f". Re-running will not help until this is fixed: "
                    f"{permanent}")
        return (f"run {self.run_id}: " + "; ".join(parts) +
                ". Re-run the same command (or run id) to retry exactly those; answers already paid for are reused")

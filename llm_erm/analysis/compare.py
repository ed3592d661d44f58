"""Compare a candidate run with a baseline run, cell by cell, and name the regressions.

A cell (method label, target, length) present in both runs regresses when
- `test_accuracy`: its selected test accuracy mean dropped by more than its noise, i.e.
      baseline_mean - candidate_mean > max(2 * sqrt(se_b^2 + se_c^2), TEST_DROP_FLOOR)
  with se = sample std / sqrt(n) of the selected test accuracy over the scored trials (0 when n < 2: one
  trial has no noise estimate, so only the floor applies);
- `status_mix`: its share of `ok` attempts (over attempts made; budget skips excluded) dropped by more than
      max(2 * sqrt(p_b(1-p_b)/n_b + p_c(1-p_c)/n_c), OK_SHARE_DROP_FLOOR)   (binomial standard errors);
- `no_result`: the baseline had a scored trial and the candidate has none.
Cells in only one of the runs are listed separately, not as regressions. Identical ledgers compare clean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llm_erm.analysis.report import markdown_table
from llm_erm.analysis.stats import CELL_KEYS, summarize_trials, with_methods
from llm_erm.errors import UsageError
from llm_erm.results.schema import SKIPPED_BUDGET

NOISE_SE = 2.0  # how many combined standard errors a drop must exceed
TEST_DROP_FLOOR = 0.02  # a smaller drop in mean test accuracy is never a regression
OK_SHARE_DROP_FLOOR = 0.10  # a smaller drop in the share of ok attempts is never a regression


@dataclass(frozen=True)
class Regression:
    target: str
    length: int
    kind: str  # test_accuracy | status_mix | no_result
    detail: str
    method_label: str = "erm"

    @property
    def cell(self) -> str:
        return cell_name(self.method_label, self.target, self.length)


def cell_name(label: str, target: str, length: int) -> str:
    """`fn_a L20` for erm, `sgd fn_a L20` for another method."""
    return f"{target} L{length}" if label == "erm" else f"{label} {target} L{length}"


@dataclass
class Comparison:
    baseline: str
    candidate: str
    table: pd.DataFrame  # one row per cell present in both runs
    regressions: list[Regression] = field(default_factory=list)
    only_in_baseline: list[tuple[str, str, int]] = field(default_factory=list)  # (label, target, length)
    only_in_candidate: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.regressions

    def to_markdown(self) -> str:
        lines = [
            f"## Run comparison: `{self.candidate}` vs baseline `{self.baseline}`",
            "",
            f"{len(self.table)} cell(s) compared; **{len(self.regressions)} regression(s)**.",
            "",
        ]
        if self.regressions:
            lines += [markdown_table(pd.DataFrame([r.__dict__ for r in self.regressions])), ""]
        for name, cells in (("baseline", self.only_in_baseline), ("candidate", self.only_in_candidate)):
            if cells:
                lines.append(f"Only in the {name}: " + ", ".join(cell_name(*cell) for cell in cells))
        if len(self.table):
            shown = self.table[
                ["method_label", "target", "length", "baseline_test_mean", "candidate_test_mean", "test_delta", "test_threshold",
                 "baseline_ok_share", "candidate_ok_share", "regression"]
            ].round(3)
            lines += ["", markdown_table(shown)]
        return "\n".join(lines) + "\n"


def _read_run(run_dir: Path) -> pd.DataFrame:
    from llm_erm.results.ledger import read_attempts

    attempts = read_attempts(run_dir).to_pandas()
    if attempts.empty:
        raise UsageError(f"no attempts under {run_dir}: pass the directory of a run that has finished trials")
    return with_methods(attempts)


def _cell_figures(attempts: pd.DataFrame) -> pd.DataFrame:
    """Per cell: the selected-test statistics and the ok share that the regression rules use."""
    trials = summarize_trials(attempts)
    scored = trials[trials["scored"]]
    tests = scored.groupby(CELL_KEYS)["selected_test_acc"]
    made = attempts[attempts["status"] != SKIPPED_BUDGET]
    figures = pd.DataFrame(
        {
            "trials": trials.groupby(CELL_KEYS).size(),
            "test_n": tests.size(),
            "test_mean": tests.mean(),
            "test_se": tests.std(ddof=1) / np.sqrt(tests.size()),
            "attempts_made": made.groupby(CELL_KEYS).size(),
            "ok": made[made["status"] == "ok"].groupby(CELL_KEYS).size(),
            "dataset_id": attempts.groupby(CELL_KEYS)["dataset_id"].first(),
        }
    )
    figures[["test_n", "attempts_made", "ok"]] = figures[["test_n", "attempts_made", "ok"]].fillna(0)
    figures["test_se"] = figures["test_se"].fillna(0.0)
    figures["ok_share"] = figures["ok"] / figures["attempts_made"].where(figures["attempts_made"] > 0)
    return figures


def compare_runs(baseline_dir: Path, candidate_dir: Path) -> Comparison:
    """Compare two runs' ledgers cell by cell (rules in the module doc)."""
    return compare_attempts(baseline_dir.name, _read_run(baseline_dir), candidate_dir.name, _read_run(candidate_dir))


def compare_attempts(baseline: str, baseline_attempts: pd.DataFrame,
                     candidate: str, candidate_attempts: pd.DataFrame) -> Comparison:
    """compare_runs over attempt rows already read (e.g. one method's rows of each run), named by run id."""
    base = _cell_figures(with_methods(baseline_attempts))
    cand = _cell_figures(with_methods(candidate_attempts))
    common = base.index.intersection(cand.index).sort_values()
    rows, regressions = [], []
    for key in common:
        b, c = base.loc[key], cand.loc[key]
        label, target, length = key[0], key[1], int(key[2])
        test_delta = c["test_mean"] - b["test_mean"]
        test_threshold = max(NOISE_SE * math.hypot(b["test_se"], c["test_se"]), TEST_DROP_FLOOR)
        ok_delta = c["ok_share"] - b["ok_share"]
        ok_threshold = max(
            NOISE_SE * math.sqrt(_binomial_var(b["ok_share"], b["attempts_made"])
                                 + _binomial_var(c["ok_share"], c["attempts_made"])),
            OK_SHARE_DROP_FLOOR,
        )
        found = []
        if b["test_n"] > 0 and c["test_n"] == 0:
            found.append(("no_result", f"baseline scored {int(b['test_n'])} trial(s), the candidate none"))
        elif test_delta < -test_threshold:
            found.append(
                ("test_accuracy", f"selected test accuracy {b['test_mean']:.3f} -> {c['test_mean']:.3f} "
                                  f"(drop {-test_delta:.3f} > noise threshold {test_threshold:.3f})")
            )
        if ok_delta < -ok_threshold:
            found.append(
                ("status_mix", f"share of ok attempts {b['ok_share']:.2f} -> {c['ok_share']:.2f} "
                               f"(drop {-ok_delta:.2f} > threshold {ok_threshold:.2f})")
            )
        regressions += [Regression(target, length, kind, detail, label) for kind, detail in found]
        rows.append(
            {
                "method_label": label,
                "target": target,
                "length": length,
                "same_dataset": b["dataset_id"] == c["dataset_id"],
                "baseline_trials": int(b["trials"]),
                "candidate_trials": int(c["trials"]),
                "baseline_test_mean": b["test_mean"],
                "candidate_test_mean": c["test_mean"],
                "test_delta": test_delta,
                "test_threshold": test_threshold,
                "baseline_ok_share": b["ok_share"],
                "candidate_ok_share": c["ok_share"],
                "ok_share_delta": ok_delta,
                "ok_share_threshold": ok_threshold,
                "regression": bool(found),
                "reasons": "; ".join(kind for kind, _ in found),
            }
        )
    return Comparison(
        baseline=baseline,
        candidate=candidate,
        table=pd.DataFrame(rows),
        regressions=regressions,
        only_in_baseline=[(m, t, int(length)) for m, t, length in base.index.difference(cand.index)],
        only_in_candidate=[(m, t, int(length)) for m, t, length in cand.index.difference(base.index)],
    )


def _binomial_var(p: float, n: float) -> float:
    return 0.0 if n == 0 or math.isnan(p) else p * (1 - p) / n

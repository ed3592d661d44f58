"""The wave rule of an erm trial, shared by the plain loop (one trial per thread) and batch mode (one wave of
every trial per Batch API job): which attempts a wave holds, and when a trial is over after one.

Wave w holds attempts [1 + (w-1)·wave_size, w·wave_size]; a trial ends after the wave in which its rule calls
an attempt solved (early stopping), in which a call was skipped for the budget (the rest are written as
skipped: a re-run makes them), or that reached the last attempt.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llm_erm.results.rows import attempt_row
from llm_erm.results.schema import SKIPPED_BUDGET
from llm_erm.results.selection import SelectionRule


def waves(attempts: int, wave_size: int) -> Iterator[range]:
    """The attempts of each wave, in order."""
    for first in range(1, attempts + 1, wave_size):
        yield range(first, min(first + wave_size, attempts + 1))


def trial_over(rows: list[dict[str, Any]], wave: range, attempts: int, rule: SelectionRule,
               identity: dict[str, Any]) -> bool:
    """After `wave`: True when the trial ends here (a budget stop appends the skipped rows to `rows`)."""
    if any(row["status"] == SKIPPED_BUDGET for row in rows):
        rows += [attempt_row(identity=identity, attempt=a, skipped=True) for a in range(wave.stop, attempts + 1)]
        return True
    return wave.stop > attempts or any(rule.solved(row) for row in rows)

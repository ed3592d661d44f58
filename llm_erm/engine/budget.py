"""A spending cap for a run, read from its answer journal: once the spend reaches it, no new call starts.

The journal is the record, so the cap holds across resumes and across every worker that shares the
run's results directory: a grid never spends more than the budget plus the calls in flight.
"""

from __future__ import annotations

from llm_erm.results.journal import Journal


class Budget:
    def __init__(self, limit_usd: float | None, journal: Journal):
        self.limit_usd = limit_usd
        self.journal = journal

    @property
    def spent_usd(self) -> float:
        return self.journal.spent_usd(refresh=False)

    def exhausted(self) -> bool:
        # Other workers' spend is read on every check: a look at a few files' sizes.
        return self.limit_usd is not None and self.journal.spent_usd(refresh=True) >= self.limit_usd

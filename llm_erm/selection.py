"""Empirical risk minimisation over the proposed programs: pick by validation accuracy only."""

from __future__ import annotations

from collections.abc import Sequence


def select_index(val_accs: Sequence[float | None]) -> int | None:
    """Index of the strictly highest validation accuracy; ties keep the earlier attempt.

    An attempt without a validation score (no code, a failed call) is never selected. Test accuracy is
    deliberately not an argument: it must not influence selection.
    """
    best: int | None = None
    for i, acc in enumerate(val_accs):
        if acc is not None and (best is None or acc > val_accs[best]):
            best = i
    return best

"""Selection rules: which proposed program a trial keeps, and when a trial may stop early.

One protocol, used by the trial (the `selected` and `stopped_early` columns) and by the analysis (which
recomputes the selection to check the ledger, and can compare rules on the same attempts). A rule sees an
attempt's validation score and program size, never its test accuracy: test accuracy must not influence
selection. Rules register by name in RULES; a new rule is one class here.

It lives in results/ because a rule reads ledger rows and decides the ledger's `selected`, `stopped_early`
and `selection_rule` columns (results/rows.py writes them); config, the engine and the analysis all sit
above results, so each can import it without a circle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llm_erm.errors import UsageError

Attempt = Mapping[str, Any]  # a ledger row: val_acc, ast_nodes, attempt ...


class SelectionRule(Protocol):
    name: str

    def select(self, attempts: Sequence[Attempt]) -> int | None:
        """Index of the chosen attempt, or None when none has a validation score."""

    def solved(self, attempt: Attempt) -> bool:
        """The trial may stop after this attempt: nothing later could be chosen over it."""


def _val(attempt: Attempt) -> float | None:
    value = attempt.get("val_acc")
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


class HighestValidation:
    """ERM: the strictly highest validation accuracy; ties keep the earlier attempt. Stops at 1.0."""

    name = "erm"

    def select(self, attempts: Sequence[Attempt]) -> int | None:
        best: int | None = None
        for i, attempt in enumerate(attempts):
            value = _val(attempt)
            if value is not None and (best is None or value > _val(attempts[best])):
                best = i
        return best

    def solved(self, attempt: Attempt) -> bool:
        return _val(attempt) == 1.0


class ShortestAmongBest(HighestValidation):
    """Among the attempts with the highest validation accuracy, the smallest program (AST nodes); ties keep
    the earlier attempt. An Occam tie-break: it differs from ERM only when several attempts tie."""

    name = "shortest"

    def select(self, attempts: Sequence[Attempt]) -> int | None:
        scored = [(i, _val(a)) for i, a in enumerate(attempts) if _val(a) is not None]
        if not scored:
            return None
        top = max(value for _, value in scored)

        def size(i: int) -> float:
            nodes = attempts[i].get("ast_nodes")
            return math.inf if nodes is None or nodes != nodes else float(nodes)

        return min((i for i, value in scored if value == top), key=lambda i: (size(i), i))


RULES: dict[str, SelectionRule] = {rule.name: rule for rule in (HighestValidation(), ShortestAmongBest())}


def get_rule(name: str) -> SelectionRule:
    try:
        return RULES[name]
    except KeyError:
        raise UsageError(f"unknown selection rule {name!r}: use one of {', '.join(RULES)}") from None


def select_index(val_accs: Sequence[float | None]) -> int | None:
    """The ERM choice among plain validation scores (see HighestValidation)."""
    return RULES["erm"].select([{"val_acc": v} for v in val_accs])

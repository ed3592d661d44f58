"""Assembling the ledger rows of one trial (plain data, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET
from llm_erm.results.selection import SelectionRule, get_rule


def attempt_row(
    *,
    identity: dict[str, Any],
    attempt: int,
    proposal: dict[str, Any] | None = None,
    verdict: dict[str, Any] | None = None,
    propose_error: str | None = None,
    skipped: bool = False,
    reused: bool = False,
) -> dict[str, Any]:
    """One attempt row: the trial's identity plus what the proposer and the verifier said.

    `identity` holds the columns shared by every attempt of the trial (run_id, target, length, trial,
    dataset, proposer, model, prompt ...); `proposal` is an answer (a journal record, or
    Proposal.to_dict()); `verdict` a CandidateResult.to_row(); `reused` says the answer came from the
    journal rather than a call made now.
    """
    row: dict[str, Any] = {**identity, "attempt": attempt, "created_at": datetime.now(UTC)}
    if skipped:
        return {**row, "status": SKIPPED_BUDGET}
    if propose_error is not None:
        return {**row, "status": PROPOSE_ERROR, "propose_error": propose_error}
    assert proposal is not None and verdict is not None
    usage = proposal["usage"]
    extra = proposal.get("extra") or {}
    row.update(
        response_model=proposal["model"],
        text=proposal["text"],
        latency_s=proposal["latency_s"],
        cost_usd=proposal["cost_usd"],
        tool_uses=proposal.get("tool_uses", 0),
        tool_results_chars=proposal.get("tool_results_chars", 0),
        prompt_tokens=usage["prompt_tokens"],
        completion_tokens=usage["completion_tokens"],
        reasoning_tokens=usage["reasoning_tokens"],
        cached_tokens=usage["cached_tokens"],
        finish_reason=proposal.get("finish_reason"),
        truncated=bool(proposal.get("truncated")),
        response_id=proposal.get("response_id"),
        proposal_extra=json.dumps(extra, sort_keys=True, default=str) if extra else None,
        reused_answer=reused,
    )
    row.update(verdict)
    return row


def finish_trial(rows: list[dict[str, Any]], attempts_planned: int,
                 rule: SelectionRule | str = "erm") -> list[dict[str, Any]]:
    """Mark the selected attempt (by the selection rule, on validation only) and the attempt at which the
    trial stopped early: the first the rule calls solved, when attempts were left."""
    rule = get_rule(rule) if isinstance(rule, str) else rule
    chosen = rule.select(rows)
    stop = next((i for i, row in enumerate(rows) if rule.solved(row)), None)
    return [
        {**row, "selection_rule": rule.name, "selected": i == chosen,
         "stopped_early": i == stop and row["attempt"] < attempts_planned}
        for i, row in enumerate(rows)
    ]


# The identity fields that have columns of their own (proposer, model, base_url, tools): not request parameters.
_OWN_COLUMNS = ("provider", "model", "base_url", "tools")


def request_params_json(identity: dict[str, Any]) -> str:
    """The request parameters of a proposer identity, as JSON: its `params` (sampling, output cap, reasoning
    ...), or, for a proposer without (enumerate, replay, a learner), its settings; never the fields that have
    their own columns."""
    params = identity["params"] if "params" in identity else {
        k: v for k, v in identity.items() if k not in _OWN_COLUMNS}
    return json.dumps(params, sort_keys=True, default=str)

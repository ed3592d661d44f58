"""Assembling the ledger rows of one trial (plain data, no I/O)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET
from llm_erm.selection import select_index


def attempt_row(
    *,
    identity: dict[str, Any],
    attempt: int,
    proposal: dict[str, Any] | None = None,
    verdict: dict[str, Any] | None = None,
    propose_error: str | None = None,
    skipped: bool = False,
) -> dict[str, Any]:
    """One attempt row: the trial's identity plus what the proposer and the verifier said.

    `identity` holds the columns shared by every attempt of the trial (run_id, target, length, trial,
    dataset, proposer, model, prompt ...); `proposal` is a Proposal.to_dict(); `verdict` a
    CandidateResult.to_row().
    """
    row: dict[str, Any] = {**identity, "attempt": attempt, "created_at": datetime.now(UTC)}
    if skipped:
        return {**row, "status": SKIPPED_BUDGET}
    if propose_error is not None:
        return {**row, "status": PROPOSE_ERROR, "propose_error": propose_error}
    assert proposal is not None and verdict is not None
    usage = proposal["usage"]
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
    )
    row.update(verdict)
    return row


def finish_trial(rows: list[dict[str, Any]], attempts_planned: int) -> list[dict[str, Any]]:
    """Mark the selected attempt (validation only) and the attempt at which the trial stopped early.

    A trial stops early at its first attempt with validation accuracy 1.0, when attempts were left.
    """
    chosen = select_index([row.get("val_acc") for row in rows])
    stop = next((i for i, row in enumerate(rows) if row.get("val_acc") == 1.0), None)
    return [
        {**row, "selected": i == chosen, "stopped_early": i == stop and row["attempt"] < attempts_planned}
        for i, row in enumerate(rows)
    ]


def request_params_json(identity: dict[str, Any]) -> str:
    return json.dumps(identity, sort_keys=True, default=str)

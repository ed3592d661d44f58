"""The proposer interface: given a prompt and the attempt's identity, return raw text and its cost.

A proposer never learns which hidden target it is asked about: it sees the prompt (what a model would
see) and the attempt's identity (trial, attempt and a per-attempt seed, so k attempts can be k
reproducible samples).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class ProposerError(Exception):
    """A model call that did not produce an answer."""


class TransientProposerError(ProposerError):
    """Worth retrying: 429, 5xx, timeouts, dropped connections. `retry_after_s` honours Retry-After."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentProposerError(ProposerError):
    """Retrying cannot help (400/401/403/404/422, an unrecorded replay request): the attempt fails."""


@dataclass(frozen=True)
class ProposeRequest:
    prompt: str
    trial: int
    attempt: int
    seed: int | None = None  # derived from the run, prompt, trial and attempt (see engine.calls.attempt_seed)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # part of completion_tokens, billed as output
    cached_tokens: int = 0  # part of prompt_tokens, billed at the cached-input rate


@dataclass(frozen=True)
class Proposal:
    text: str
    usage: Usage
    latency_s: float
    model: str  # the model name the server reported
    cost_usd: float | None  # None: unpriced model, never silently free
    tool_uses: int = 0
    tool_results_chars: int = 0
    finish_reason: str | None = None  # what the server said about how the answer ended (stop, length ...)
    truncated: bool = False  # the answer was cut off by an output or context limit
    response_id: str | None = None  # the server's id of the response (the request id, for support tickets)
    extra: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping (JSON-able)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**{**known, "usage": Usage(**data["usage"])})


class Proposer(Protocol):
    """What the engine calls. Implementations register by name in `llm_erm.proposers.registry`.

    Optional, where a proposer can (the engine checks with getattr):
    - check_prompt(prompt: str) -> None: raise UsageError when this prompt cannot be served (prompt plus
      output cap over the server's context), before any call of the grid is made;
    - cost_basis() -> pricing.CostBasis: the model, price (at the batch/flex rate the run pays) and output
      cap a cost estimate before the run should use;
    - batch_endpoint, batch_body(request), batch_client(), proposal_from_body(body, latency_s, extra): the
      Batch API (llm_erm.engine.batch).
    identity() carries "tools": the tools the model may use ([] when none), recorded in every row.
    """

    kind: str

    def preflight(self) -> None:
        """Raise UsageError before the grid starts when this proposer cannot work (missing key...)."""

    def identity(self) -> dict[str, Any]:
        """JSON-able provider, base URL, model and request parameters: part of the answer journal's key."""

    def propose(self, request: ProposeRequest) -> Proposal: ...

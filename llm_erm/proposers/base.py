"""The proposer interface: given a prompt and the attempt's identity, return raw text and its cost."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


class TransientProposerError(Exception):
    """Worth retrying: 429, 5xx, timeouts, dropped connections. `retry_after_s` honours Retry-After."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentProposerError(Exception):
    """Retrying cannot help (400/401/403/404/422, an unrecorded replay request): the attempt fails."""


@dataclass(frozen=True)
class ProposeRequest:
    prompt: str
    target: str
    length: int
    trial: int
    attempt: int


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
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        return cls(**{**data, "usage": Usage(**data["usage"])})


class Proposer(Protocol):
    kind: str

    def preflight(self) -> None:
        """Raise UsageError before the grid starts when this proposer cannot work (missing key...)."""

    def identity(self) -> dict[str, Any]:
        """JSON-able provider, base URL, model and request parameters: part of the paid-call cache key."""

    def propose(self, request: ProposeRequest) -> Proposal: ...

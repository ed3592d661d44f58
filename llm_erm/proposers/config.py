"""How a run draws its candidates: the proposer settings, and the factory that builds a proposer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_erm.errors import UsageError
from llm_erm.proposers.base import Proposer

ProposerKind = Literal["openai-responses", "openai-chat", "enumerate", "replay"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class ProposerConfig(BaseModel):
    """Settings of one proposer. Fields that a kind does not use are ignored by it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProposerKind = "enumerate"
    # openai-responses / openai-chat
    model: str = "gpt-5"
    base_url: str | None = None  # None: OpenAI's API
    api_key_env: str = "OPENAI_API_KEY"
    reasoning_effort: ReasoningEffort | None = "high"  # sent to reasoning models only
    verbosity: Literal["low", "medium", "high"] | None = "low"  # Responses API, gpt-5 family only
    max_output_tokens: int = Field(20000, gt=0)
    tool_choice: Literal["auto", "none", "required"] = "auto"
    code_interpreter: bool = False  # Responses API only
    timeout_s: float = Field(1200.0, gt=0)
    # Chat Completions: which name the server expects for the output limit. None picks
    # max_completion_tokens for OpenAI-hosted reasoning models and max_tokens otherwise.
    chat_max_tokens_param: Literal["max_completion_tokens", "max_tokens"] | None = None
    # replay
    replay_from: Path | None = None
    # enumerate
    enumerate_max_programs: int = Field(200_000, gt=0)
    enumerate_max_seconds: float = Field(20.0, gt=0)

    @classmethod
    def from_options(cls, **options: Any) -> ProposerConfig:
        """Build from user input; a bad value becomes one UsageError line naming the field."""
        try:
            return cls(**options)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or "proposer settings"
            raise UsageError(
                f"proposer setting {field}={error.get('input')!r} is invalid: {error['msg']}"
            ) from None


def make_proposer(cfg: ProposerConfig) -> Proposer:
    """The proposer for cfg.kind. Cheap: no network, no file read (preflight() checks those)."""
    if cfg.kind == "openai-responses":
        from llm_erm.proposers.openai_api import ResponsesProposer

        return ResponsesProposer(cfg)
    if cfg.kind == "openai-chat":
        from llm_erm.proposers.openai_api import ChatProposer

        return ChatProposer(cfg)
    if cfg.kind == "replay":
        from llm_erm.proposers.replay import ReplayProposer

        if cfg.replay_from is None:
            raise UsageError("the replay proposer needs a source: pass --replay-from RESULTS_DIR_OR_JSONL")
        return ReplayProposer(cfg.replay_from)
    from llm_erm.proposers.enumerate import EnumerateProposer

    return EnumerateProposer(max_programs=cfg.enumerate_max_programs, max_seconds=cfg.enumerate_max_seconds)

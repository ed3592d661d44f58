"""How a run draws its candidates: the settings of one proposer (nested in GridConfig as `proposer`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llm_erm.errors import UsageError

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]

OPENAI_DEFAULT_OUTPUT_TOKENS = 20000  # GPT-5 at high reasoning effort needs room to think
OTHER_DEFAULT_OUTPUT_TOKENS = 2048  # a local server would otherwise generate until its context is full


class ProposerConfig(BaseModel):
    """Settings of one proposer. Fields that a kind does not use are ignored by it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str | None = Field(None, description="openai-responses | openai-chat | enumerate | replay, or a "
                             "registered third-party proposer (default: openai-responses with OPENAI_API_KEY, "
                             "else the offline enumerator)")
    # model proposers
    model: str = Field("gpt-5", description="Model name sent to the server")
    base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 "
                                 "(default: OpenAI's API)")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key")
    reasoning_effort: ReasoningEffort | None = Field("high", description="Sent to reasoning models only")
    verbosity: Literal["low", "medium", "high"] | None = Field("low", description="Responses API, gpt-5 family")
    max_output_tokens: int | None = Field(None, gt=0, description="Output cap (default: 20000 on OpenAI's "
                                          "API, 2048 on other servers)")
    temperature: float | None = Field(None, ge=0, description="Sampling temperature (default: the server's)")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling (default: the server's)")
    send_seed: bool = Field(True, description="Chat Completions: send each attempt's own seed, so k attempts "
                            "are k reproducible samples")
    structured_output: bool = Field(False, description="Chat Completions: ask for JSON {\"code\": ...} "
                                    "with a response_format schema")
    tool_choice: Literal["auto", "none", "required"] = Field("auto", description="Responses API: auto | none | "
                                                             "required")
    code_interpreter: bool = Field(False, description="Responses API: enable the code-interpreter tool")
    call_timeout_s: float = Field(1200.0, gt=0, description="Seconds one model call may take")
    # Chat Completions: which name the server expects for the output limit. None picks
    # max_completion_tokens for OpenAI-hosted reasoning models and max_tokens otherwise.
    chat_max_tokens_param: Literal["max_completion_tokens", "max_tokens"] | None = Field(
        None, description="Chat Completions: max_completion_tokens | max_tokens (default: what the server expects)")
    # replay
    replay_from: Path | None = Field(None, description="Ledger dir, journal or JSONL to replay (replay proposer)")
    # enumerate
    enumerate_max_programs: int = Field(200_000, gt=0, description="Enumerator budget in programs")
    enumerate_max_seconds: float = Field(20.0, gt=0, description="Enumerator budget in seconds")
    # third-party proposers read their own settings from here
    options: dict[str, Any] = Field(default_factory=dict, description="Settings of a third-party proposer")

    @model_validator(mode="before")
    @classmethod
    def _kind_shorthand(cls, data: Any) -> Any:
        # "openai-chat" alone means {"kind": "openai-chat"}: from the CLI, `--param proposer=...` and notebooks.
        return {"kind": data} if isinstance(data, str) else data

    def resolved_kind(self) -> str:
        if self.kind is not None:
            return self.kind
        return "openai-responses" if os.environ.get(self.api_key_env) else "enumerate"

    def resolved(self) -> ProposerConfig:
        """This config with `kind` filled in (the automatic choice made once, where the run starts)."""
        return self if self.kind is not None else self.model_copy(update={"kind": self.resolved_kind()})

    def output_tokens(self, openai_hosted: bool) -> int:
        if self.max_output_tokens is not None:
            return self.max_output_tokens
        return OPENAI_DEFAULT_OUTPUT_TOKENS if openai_hosted else OTHER_DEFAULT_OUTPUT_TOKENS

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

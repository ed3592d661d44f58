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

DEFAULT_MODEL = "gpt-5"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
ANTHROPIC_DEFAULT_MODEL = "claude-sonnet-4-6"  # not in the price table yet: unpriced until added
GEMINI_DEFAULT_MODEL = "gemini-2.5-pro"
BATCH_KINDS = ("openai-responses", "openai-chat")  # the proposers that can run a grid through the Batch API


class ProposerConfig(BaseModel):
    """Settings of one proposer. Fields that a kind does not use are ignored by it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str | None = Field(None, description="openai-responses | openai-chat | anthropic | gemini | enumerate | "
                             "replay, or a registered third-party proposer (default: openai-responses with "
                             "OPENAI_API_KEY, else the offline enumerator)")
    # model proposers
    model: str = Field(DEFAULT_MODEL, description="Model name sent to the server (the default gpt-5 means "
                       f"{ANTHROPIC_DEFAULT_MODEL} for anthropic and {GEMINI_DEFAULT_MODEL} for gemini)")
    base_url: str | None = Field(None, description="The API's address, e.g. http://127.0.0.1:8000/v1 for an "
                                 "OpenAI-compatible server (default: the provider's own API)")
    api_key_env: str = Field(DEFAULT_KEY_ENV, description="Environment variable holding the API key (the default "
                             "means ANTHROPIC_API_KEY for anthropic and GEMINI_API_KEY for gemini)")
    reasoning_effort: ReasoningEffort | None = Field("high", description="Sent to reasoning models only")
    verbosity: Literal["low", "medium", "high"] | None = Field("low", description="Responses API, gpt-5 family")
    max_output_tokens: int | None = Field(None, gt=0, description="Output cap (default: 20000 on OpenAI's and "
                                          "Gemini's APIs, 8192 plus the thinking budget on Anthropic's, 2048 on "
                                          "other servers)")
    temperature: float | None = Field(None, ge=0, le=2, description="Sampling temperature, 0 to 2 (default: the "
                                      "server's)")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling (default: the server's)")
    send_seed: bool = Field(True, description="Chat Completions and Gemini: send each attempt's own seed, so k "
                            "attempts are k reproducible samples")
    structured_output: bool = Field(False, description="Ask for JSON {\"code\": ...} with a JSON schema "
                                    "(Chat: response_format; Responses: text.format; Anthropic, Gemini: their own)")
    tool_choice: Literal["auto", "none", "required"] = Field("auto", description="Responses API: auto | none | "
                                                             "required")
    code_interpreter: bool = Field(False, description="Let the model run code: the Responses API's code "
                                   "interpreter, Anthropic's and Gemini's code-execution tools")
    thinking_budget: int | None = Field(None, ge=-1, description="Thinking budget in tokens, Anthropic and "
                                        "Gemini: 0 off, -1 the model decides (Anthropic: adaptive), else the "
                                        "budget (Anthropic: >= 1024) (default: the model's)")
    service_tier: Literal["auto", "default", "flex", "priority"] | None = Field(
        None, description="OpenAI: auto | default | flex (half price, slower, may be refused for a while) | "
        "priority (default: the project's)")
    batch: bool = Field(False, description="OpenAI: submit each wave of attempts (attempt w of every pending "
                        "trial) as one Batch API job: half price, results within 24 h, resumable")
    batch_poll_s: float = Field(30.0, gt=0, description="Batch mode: seconds between looks at a pending batch")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Chat Completions: extra JSON fields "
                                       "for every request, e.g. {\"top_k\": 20} (vLLM) or {\"cache_prompt\": false} "
                                       "(llama.cpp: answers that do not depend on the prompt cache)")
    call_timeout_s: float = Field(1200.0, gt=0, description="Seconds one model call may take")
    # Chat Completions: which name the server expects for the output limit. None picks
    # max_completion_tokens for OpenAI-hosted reasoning models and max_tokens otherwise.
    chat_max_tokens_param: Literal["max_completion_tokens", "max_tokens"] | None = Field(
        None, description="Chat Completions: max_completion_tokens | max_tokens (default: what the server expects)")
    # replay
    replay_from: Path | str | None = Field(None, description="Ledger dir (or s3://... run), journal or JSONL to replay (replay proposer)")
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
        kind = self.resolved_kind()
        if self.batch and kind not in BATCH_KINDS:
            raise UsageError(f"--batch runs a grid through OpenAI's Batch API, and proposer {kind!r} has none: "
                             f"use --proposer {' or '.join(BATCH_KINDS)}, or drop --batch")
        return self if self.kind is not None else self.model_copy(update={"kind": kind})

    def model_for(self, default: str) -> str:
        """The model to ask for: the provider's `default` when the model is the shared default (gpt-5)."""
        return default if self.model == DEFAULT_MODEL else self.model

    def key_env_for(self, default: str) -> str:
        """The key's variable: the provider's `default` when it is the shared default (OPENAI_API_KEY)."""
        return default if self.api_key_env == DEFAULT_KEY_ENV else self.api_key_env

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

"""Anthropic's Messages API through the official `anthropic` SDK (the `anthropic` extra).

Body: model, max_tokens, one user message with the prompt, thinking when `thinking_budget` is set (0
disabled, -1 adaptive, N >= 1024 enabled with that budget), JSON output with a {code: string} schema (output_config.format) when `structured_output`, and
Anthropic's code-execution tool when `code_interpreter` is on. temperature/top_p, when set, travel as extra
body fields (recent SDKs no longer name them; the API accepts or refuses them per model, and a refusal is a
permanent error quoting it). The API takes no seed, so k attempts are k samples but not reproducible ones. Usage is normalised: prompt =
input + cache writes + cache reads, cached = cache reads; cost adds the cache-write premium (1.25x
input). The SDK's retries are off: the engine retries (429, 5xx and 529 "overloaded" are transient).
"""

from __future__ import annotations

import time
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.proposers.base import (
    PermanentProposerError,
    Proposal,
    ProposeRequest,
    TransientProposerError,
    Usage,
)
from llm_erm.proposers.config import ANTHROPIC_DEFAULT_MODEL
from llm_erm.proposers.http_errors import status_error
from llm_erm.proposers.pricing import price_of
from llm_erm.proposers.sdk_base import SdkProposer

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
INSTALL_HINT = "pip install 'llm-erm[anthropic]'"
CODE_EXECUTION_TOOL = {"type": "code_execution_20250825", "name": "code_execution"}
CODE_SCHEMA = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"],
               "additionalProperties": False}
CODE_EXECUTION_BETA = "code-execution-2025-08-25"  # harmless where the tool is generally available
HOSTED_OUTPUT_TOKENS = 8192
OTHER_OUTPUT_TOKENS = 2048
MIN_THINKING_BUDGET = 1024  # the API's minimum
CACHE_WRITE_PREMIUM = 0.25  # a 5-minute cache write costs 1.25x the input rate
TRUNCATED = ("max_tokens", "model_context_window_exceeded")
TOOL_RESULTS = ("bash_code_execution_tool_result", "code_execution_tool_result")


class AnthropicProposer(SdkProposer):
    kind = "anthropic"
    provider = "Anthropic"
    default_model = ANTHROPIC_DEFAULT_MODEL
    key_env_default = KEY_ENV
    default_base_url = ANTHROPIC_BASE_URL
    hosted_domain = "anthropic.com"

    # -- the Proposer protocol --------------------------------------------------------------------
    def preflight(self) -> None:
        _sdk()
        self._key()
        cfg = self.cfg
        if cfg.thinking_budget is not None and cfg.thinking_budget > 0:
            if cfg.thinking_budget < MIN_THINKING_BUDGET:
                raise UsageError(f"--thinking-budget {cfg.thinking_budget} is below Anthropic's minimum of "
                                 f"{MIN_THINKING_BUDGET}: pass at least {MIN_THINKING_BUDGET}, or leave it unset")
            if cfg.max_output_tokens is not None and cfg.max_output_tokens <= cfg.thinking_budget:
                raise UsageError(f"--max-output-tokens {cfg.max_output_tokens} must exceed --thinking-budget "
                                 f"{cfg.thinking_budget} (the answer comes after the thinking)")
        self.check_base_url()

    def output_cap(self) -> int:
        if self.cfg.max_output_tokens is not None:
            return self.cfg.max_output_tokens
        base = HOSTED_OUTPUT_TOKENS if self.hosted else OTHER_OUTPUT_TOKENS
        return base + max(self.cfg.thinking_budget or 0, 0)

    def request_params(self) -> dict[str, Any]:
        cfg = self.cfg
        params: dict[str, Any] = {"max_tokens": self.output_cap()}
        sampling = {name: getattr(cfg, name) for name in ("temperature", "top_p") if getattr(cfg, name) is not None}
        if sampling:
            params["extra_body"] = sampling
        if cfg.thinking_budget is not None:
            params["thinking"] = thinking_config(cfg.thinking_budget)
        if cfg.structured_output:
            params["output_config"] = {"format": {"type": "json_schema", "schema": CODE_SCHEMA}}
        if cfg.code_interpreter:
            params["tools"] = [dict(CODE_EXECUTION_TOOL)]
        return params

    def propose(self, request: ProposeRequest) -> Proposal:
        anthropic = _sdk()
        client = self._get_client()
        url = f"{self.base_url}/v1/messages"
        headers = {"anthropic-beta": CODE_EXECUTION_BETA} if self.cfg.code_interpreter else None
        started = time.monotonic()
        try:
            message = client.messages.create(model=self.model, messages=[{"role": "user", "content": request.prompt}],
                                             extra_headers=headers, **self.request_params())
        except anthropic.AnthropicError as exc:
            raise self._classify(exc, url) from exc
        except ValueError as exc:  # the body was not valid JSON
            raise TransientProposerError(f"malformed response body from {url}: {exc}") from exc
        try:
            return self._parse(message, time.monotonic() - started)
        except (AttributeError, TypeError, IndexError) as exc:
            raise TransientProposerError(f"malformed response from {url}: {type(exc).__name__}: {exc}") from exc

    # -- pieces ---------------------------------------------------------------------------------
    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    key = self._key()
                except UsageError as exc:
                    raise PermanentProposerError(str(exc)) from None
                self._client = _sdk().Anthropic(api_key=key, base_url=self.base_url, max_retries=0,
                                                timeout=self.cfg.call_timeout_s)
            return self._client

    def _parse(self, message: Any, latency_s: float) -> Proposal:
        blocks = list(message.content or [])
        text = "\n".join(block.text for block in blocks if getattr(block, "type", None) == "text")
        tool_uses = sum(1 for block in blocks if getattr(block, "type", None) == "server_tool_use")
        tool_chars = 0
        for block in blocks:
            if getattr(block, "type", None) in TOOL_RESULTS:
                result = block.content
                tool_chars += len(getattr(result, "stdout", "") or "") + len(getattr(result, "stderr", "") or "")
        u = message.usage
        written = int(getattr(u, "cache_creation_input_tokens", 0) or 0)
        read = int(getattr(u, "cache_read_input_tokens", 0) or 0)
        thinking = int(getattr(getattr(u, "output_tokens_details", None), "thinking_tokens", 0) or 0)
        usage = Usage(prompt_tokens=int(u.input_tokens) + written + read, completion_tokens=int(u.output_tokens),
                      reasoning_tokens=thinking, cached_tokens=read)
        model = message.model or self.model
        extra: dict[str, Any] = {}
        container = getattr(message, "container", None)
        if container is not None and getattr(container, "id", None):
            extra["container_id"] = container.id
        if written:
            extra["cache_write_tokens"] = written
        return Proposal(
            text=text, usage=usage, latency_s=latency_s, model=model, cost_usd=self._cost(model, usage, written),
            tool_uses=tool_uses, tool_results_chars=tool_chars, finish_reason=message.stop_reason,
            truncated=message.stop_reason in TRUNCATED, response_id=message.id, extra=extra,
        )

    def _cost(self, reported_model: str, usage: Usage, cache_written: int) -> float | None:
        price = price_of(reported_model) or price_of(self.model)
        if price is None:
            return None
        return price.cost(usage) + cache_written * price.input * CACHE_WRITE_PREMIUM / 1_000_000

    def _classify(self, exc: Exception, url: str) -> Exception:
        anthropic = _sdk()
        if isinstance(exc, anthropic.APITimeoutError):
            return TransientProposerError(f"timed out after {self.cfg.call_timeout_s:g} s waiting for {url}")
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
            return TransientProposerError(f"connection to {url} failed or was cut short ({detail})")
        if isinstance(exc, anthropic.APIResponseValidationError):
            return TransientProposerError(f"malformed response from {url}: {exc}")
        if not isinstance(exc, anthropic.APIStatusError):
            return PermanentProposerError(f"anthropic client error for {url}: {type(exc).__name__}: {exc}")
        message = exc.api_message or (exc.response.text[:200].strip() if exc.response is not None else "")
        hints = {
            401: f"check {self.key_env}",
            403: f"the key in {self.key_env} has no access to model {self.model!r} or this feature",
            404: f"model {self.model!r} or this endpoint does not exist",
            400: "the API refused the request parameters",
            413: "the request is too large: shorten the prompt (--train-size)",
            422: "the API refused the request parameters",
        }
        return status_error(exc.status_code, url, message, exc.response.headers if exc.response is not None else None,
                            hints)


def thinking_config(budget: int) -> dict[str, Any]:
    """Our thinking budget in Anthropic's words: 0 disabled, -1 adaptive (the model decides), else enabled."""
    if budget == 0:
        return {"type": "disabled"}
    if budget < 0:
        return {"type": "adaptive"}
    return {"type": "enabled", "budget_tokens": budget}


def _sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise UsageError(f"the anthropic proposer needs Anthropic's SDK: {INSTALL_HINT}") from None
    return anthropic

"""Proposers that ask a model through the official `openai` client: Responses API and Chat Completions.

The client's own retries are off (max_retries=0): the workflow owns retries, so one propose() call is
exactly one HTTP request. Every failure leaves as TransientProposerError (worth retrying: 429, 408,
409, 5xx, timeouts, dropped connections, truncated or malformed bodies) or PermanentProposerError
(400, 401, 403, 404, 422 and other 4xx), with a message naming the cause and the URL.
"""

from __future__ import annotations

import email.utils
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import openai

from llm_erm.errors import UsageError
from llm_erm.proposers.base import (
    PermanentProposerError,
    Proposal,
    ProposeRequest,
    TransientProposerError,
    Usage,
)
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.pricing import cost_usd, price_of

OPENAI_BASE_URL = "https://api.openai.com/v1"
# Structured output: the answer must be the JSON object the paper's prompt asks for.
CODE_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "program",
        "strict": True,
        "schema": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"],
                   "additionalProperties": False},
    },
}
BASE_URL_PROBE_S = 3.0
# Local servers (vLLM, Ollama) ignore the key but the client insists on one.
KEYLESS_PLACEHOLDER = "no-key"


def is_reasoning_model(model: str) -> bool:
    """OpenAI's o-series and gpt-5 family (not the non-reasoning gpt-5 chat snapshots), and gpt-oss."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if "chat" in name:
        return False
    return name.startswith(("o1", "o3", "o4", "gpt-5", "gpt-oss"))


def supports_verbosity(model: str) -> bool:
    name = model.strip().lower().rsplit("/", 1)[-1]
    return name.startswith("gpt-5")


def is_openai_hosted(base_url: str | None) -> bool:
    return base_url is None or (urlparse(base_url).hostname or "").endswith("api.openai.com")


def check_base_url(base_url: str) -> None:
    """UsageError unless base_url is an http(s) URL whose host accepts a TCP connection.

    Checked before the grid starts: an unusable URL would otherwise fail every call after its retries.
    """
    url = urlparse(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UsageError(f"--base-url {base_url!r} is not an http(s) URL: pass e.g. http://127.0.0.1:8000/v1")
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"--base-url {base_url!r} has an invalid port: pass e.g. http://127.0.0.1:8000/v1") from None
    try:
        socket.create_connection((url.hostname, port), timeout=BASE_URL_PROBE_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"the server at {base_url} does not answer ({reason}): start it, or check --base-url") from None


def read_api_key(cfg: ProposerConfig) -> str:
    """The key from cfg.api_key_env; UsageError when it is missing or obviously malformed.

    With a custom base_url (a local vLLM or Ollama server) a missing key is allowed: those servers
    accept any key, so a placeholder is sent. A hosted gateway that needs one answers 401, which
    surfaces as a PermanentProposerError naming the variable.
    """
    name = cfg.api_key_env
    value = os.environ.get(name)
    if value is None or not value.strip():
        if not is_openai_hosted(cfg.base_url):
            return KEYLESS_PLACEHOLDER
        state = "is not set" if value is None else "is empty"
        raise UsageError(f"{name} {state}: export {name}=<your OpenAI API key> before the run")
    if any(ch.isspace() for ch in value):
        raise UsageError(
            f"{name} is malformed: it contains whitespace (a stray newline or 'Bearer ' prefix?): "
            f"set it to the bare key"
        )
    if not value.isascii() or not value.isprintable():
        raise UsageError(f"{name} is malformed: it contains non-ASCII or control characters: set it to the bare key")
    return value


class _OpenAIProposer:
    kind = ""

    def __init__(self, cfg: ProposerConfig):
        self.cfg = cfg
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    # -- the Proposer protocol ------------------------------------------------------------
    def preflight(self) -> None:
        read_api_key(self.cfg)
        if self.cfg.base_url is not None:
            check_base_url(self.cfg.base_url)

    def identity(self) -> dict[str, Any]:
        return {
            "provider": self.kind,
            "base_url": (self.cfg.base_url or OPENAI_BASE_URL).rstrip("/"),
            "model": self.cfg.model,
            "params": self.request_params(),
        }

    def propose(self, request: ProposeRequest) -> Proposal:
        client = self._get_client()
        url = f"{client.base_url}{self._endpoint}"
        started = time.monotonic()
        try:
            response = self._call(client, request)
        except openai.OpenAIError as exc:
            raise _classify(exc, url, self.cfg) from exc
        except ValueError as exc:  # the body was not valid JSON
            raise TransientProposerError(f"malformed response body from {url}: {exc}") from exc
        latency = time.monotonic() - started
        try:
            return self._parse(response, latency)
        except (AttributeError, TypeError, IndexError) as exc:
            raise TransientProposerError(
                f"malformed response from {url}: {exc.__class__.__name__}: {exc}"
            ) from exc

    # -- shared machinery -----------------------------------------------------------------
    _endpoint = ""

    def request_params(self) -> dict[str, Any]:
        """The request fields that shape the answer, besides model and prompt."""
        raise NotImplementedError

    def _call(self, client: openai.OpenAI, request: ProposeRequest) -> Any:
        raise NotImplementedError

    def _parse(self, response: Any, latency_s: float) -> Proposal:
        raise NotImplementedError

    def _get_client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                try:
                    key = read_api_key(self.cfg)
                except UsageError as exc:
                    raise PermanentProposerError(str(exc)) from None
                # An explicit base URL: the client would otherwise read OPENAI_BASE_URL behind the
                # back of identity() and the paid-call cache key.
                self._client = openai.OpenAI(
                    api_key=key,
                    base_url=self.cfg.base_url or OPENAI_BASE_URL,
                    max_retries=0,  # the workflow owns retries
                    timeout=self.cfg.call_timeout_s,
                )
            return self._client

    def _cost(self, reported_model: str, usage: Usage) -> float | None:
        # The snapshot name the server reports (gpt-5-2025-08-07) prices like its base; a server
        # that renames the model falls back to the requested name.
        model = reported_model if price_of(reported_model) is not None else self.cfg.model
        return cost_usd(model, usage)


class ResponsesProposer(_OpenAIProposer):
    """OpenAI Responses API: reasoning effort, text verbosity, output limit, tool choice, code interpreter."""

    kind = "openai-responses"
    _endpoint = "responses"

    def request_params(self) -> dict[str, Any]:
        cfg = self.cfg
        params: dict[str, Any] = {"max_output_tokens": cfg.output_tokens(is_openai_hosted(cfg.base_url)),
                                  "tool_choice": cfg.tool_choice}
        for name in ("temperature", "top_p"):
            if getattr(cfg, name) is not None:
                params[name] = getattr(cfg, name)
        if cfg.reasoning_effort is not None and is_reasoning_model(cfg.model):
            params["reasoning"] = {"effort": cfg.reasoning_effort}
        if cfg.verbosity is not None and supports_verbosity(cfg.model):
            params["text"] = {"verbosity": cfg.verbosity}
        if cfg.code_interpreter:
            params["tools"] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
            # Without this the tool's logs are not returned and their size cannot be recorded.
            params["include"] = ["code_interpreter_call.outputs"]
        return params

    def _call(self, client: openai.OpenAI, request: ProposeRequest) -> Any:
        return client.responses.create(
            model=self.cfg.model,
            input=[{"role": "user", "content": request.prompt}],
            **self.request_params(),
        )

    def _parse(self, response: Any, latency_s: float) -> Proposal:
        usage = _responses_usage(getattr(response, "usage", None))
        tool_calls = [item for item in response.output if getattr(item, "type", None) == "code_interpreter_call"]
        tool_chars = sum(
            len(out.logs)
            for call in tool_calls
            for out in (getattr(call, "outputs", None) or [])
            if getattr(out, "type", None) == "logs"
        )
        model = response.model or self.cfg.model
        status = getattr(response, "status", None)
        incomplete = getattr(getattr(response, "incomplete_details", None), "reason", None)
        return Proposal(
            text=response.output_text,
            usage=usage,
            latency_s=latency_s,
            model=model,
            cost_usd=self._cost(model, usage),
            tool_uses=len(tool_calls),
            tool_results_chars=tool_chars,
            finish_reason=incomplete or status,
            truncated=incomplete in ("max_output_tokens", "max_tokens"),
            response_id=response.id,
        )


class ChatProposer(_OpenAIProposer):
    """Chat Completions, for any OpenAI-compatible server (vLLM, Ollama, Azure, gateways)."""

    kind = "openai-chat"
    _endpoint = "chat/completions"

    def preflight(self) -> None:
        if self.cfg.code_interpreter:
            raise UsageError("the code interpreter needs the Responses API: use --proposer openai-responses")
        super().preflight()

    def max_tokens_param(self) -> str:
        if self.cfg.chat_max_tokens_param is not None:
            return self.cfg.chat_max_tokens_param
        if is_openai_hosted(self.cfg.base_url) and is_reasoning_model(self.cfg.model):
            return "max_completion_tokens"
        return "max_tokens"

    def request_params(self) -> dict[str, Any]:
        cfg = self.cfg
        params: dict[str, Any] = {self.max_tokens_param(): cfg.output_tokens(is_openai_hosted(cfg.base_url))}
        if cfg.reasoning_effort is not None and is_reasoning_model(cfg.model):
            params["reasoning_effort"] = cfg.reasoning_effort
        for name in ("temperature", "top_p"):
            if getattr(cfg, name) is not None:
                params[name] = getattr(cfg, name)
        if cfg.structured_output:
            params["response_format"] = CODE_SCHEMA
        return params

    def _call(self, client: openai.OpenAI, request: ProposeRequest) -> Any:
        seed = {"seed": request.seed} if self.cfg.send_seed and request.seed is not None else {}
        return client.chat.completions.create(
            model=self.cfg.model,
            messages=[{"role": "user", "content": request.prompt}],
            **self.request_params(),
            **seed,
        )

    def _parse(self, response: Any, latency_s: float) -> Proposal:
        choice = response.choices[0]
        usage = _chat_usage(getattr(response, "usage", None))
        model = response.model or self.cfg.model
        return Proposal(
            text=choice.message.content or "",
            usage=usage,
            latency_s=latency_s,
            model=model,
            cost_usd=self._cost(model, usage),
            finish_reason=choice.finish_reason,
            truncated=choice.finish_reason == "length",
            response_id=response.id,
        )


# -- usage --------------------------------------------------------------------------------------
def _count(obj: Any, *path: str) -> int:
    """A nested token count; other servers omit any level of it."""
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return 0
    return int(obj)


def _responses_usage(usage: Any) -> Usage:
    return Usage(
        prompt_tokens=_count(usage, "input_tokens"),
        completion_tokens=_count(usage, "output_tokens"),
        reasoning_tokens=_count(usage, "output_tokens_details", "reasoning_tokens"),
        cached_tokens=_count(usage, "input_tokens_details", "cached_tokens"),
    )


def _chat_usage(usage: Any) -> Usage:
    return Usage(
        prompt_tokens=_count(usage, "prompt_tokens"),
        completion_tokens=_count(usage, "completion_tokens"),
        reasoning_tokens=_count(usage, "completion_tokens_details", "reasoning_tokens"),
        cached_tokens=_count(usage, "prompt_tokens_details", "cached_tokens"),
    )


# -- errors -------------------------------------------------------------------------------------
_REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
    409: "Conflict", 422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
}


def retry_after_seconds(headers: Any, now: datetime | None = None) -> float | None:
    """Retry-After (seconds or an HTTP date) or retry-after-ms, as seconds; None when absent or unreadable."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _seconds(value: float) -> str:
    """2.0 -> '2', 0.25 -> '0.2', 86400.0 -> '86400' (no exponent notation)."""
    return f"{value:.1f}".removesuffix(".0")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return exc.response.text[:200].strip() if exc.response is not None else ""


def _classify(exc: openai.OpenAIError, url: str, cfg: ProposerConfig) -> Exception:
    if isinstance(exc, openai.APITimeoutError):
        return TransientProposerError(f"timed out after {cfg.call_timeout_s:g} s waiting for {url}")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f"{cause.__class__.__name__}: {cause}" if cause is not None else str(exc)
        return TransientProposerError(f"connection to {url} failed or was cut short ({detail})")
    if isinstance(exc, openai.APIResponseValidationError):
        return TransientProposerError(f"malformed response from {url}: {exc}")
    if not isinstance(exc, openai.APIStatusError):
        return PermanentProposerError(f"openai client error for {url}: {exc.__class__.__name__}: {exc}")

    status = exc.status_code
    head = f"{status} {_REASONS.get(status, 'HTTP error')} from {url}"
    message = _server_message(exc)
    said = f" (server said: {message})" if message else ""
    if status == 429:
        wait = retry_after_seconds(exc.response.headers)
        when = f", retry after {_seconds(wait)} s" if wait is not None else ", no Retry-After given"
        return TransientProposerError(f"rate limited (429) by {url}{when}{said}", retry_after_s=wait)
    if status in (408, 409) or status >= 500:
        wait = retry_after_seconds(exc.response.headers)
        return TransientProposerError(f"{head}: server-side failure, worth retrying{said}", retry_after_s=wait)
    hints = {
        401: f"check {cfg.api_key_env}",
        403: f"the key in {cfg.api_key_env} has no access to model {cfg.model!r} or this endpoint",
        404: f"model {cfg.model!r} or this endpoint does not exist on this server",
        400: "the server refused the request parameters",
        422: "the server refused the request parameters",
    }
    hint = hints.get(status, "a client error that retrying cannot fix")
    if status == 400 and "context" in message.lower():
        hint = ("the prompt plus the output cap exceed the server's context window: lower --max-output-tokens, "
                "shorten the prompt (--train-size) or give the server a larger context")
    return PermanentProposerError(f"{head}: {hint}{said}")


# For the other OpenAI-compatible callers (the icl method): the same error mapping and usage reading.
classify_error = _classify
chat_usage = _chat_usage

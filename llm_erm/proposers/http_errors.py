"""How an HTTP API's failure becomes a proposer error, the same way for every provider.

429, 408, 409 and 5xx (Anthropic's 529 "overloaded" included) are transient, with the wait the server asks
for (Retry-After, retry-after-ms); other 4xx are permanent, with a hint naming the fix. Every message
names the status, the URL and what the server said.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from llm_erm.proposers.base import PermanentProposerError, ProposerError, TransientProposerError

REASONS = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
    409: "Conflict", 413: "Content Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
    529: "Overloaded",
}
CONTEXT_HINT = ("the prompt plus the output cap exceed the server's context window: lower --max-output-tokens, "
                "shorten the prompt (--train-size) or give the server a larger context (llama.cpp: --ctx-size; "
                "vLLM: --max-model-len; Ollama: OLLAMA_CONTEXT_LENGTH)")


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


def is_context_overflow(message: str) -> bool:
    """The server's words for "prompt + output cap > context": llama.cpp's exceed_context_size_error, vLLM's and
    OpenAI's "maximum context length", Anthropic's "prompt is too long", Gemini's "input token count ... exceeds"."""
    text = message.lower()
    return "context" in text or "too long" in text or ("exceeds" in text and "token" in text)


def seconds_text(value: float) -> str:
    """2.0 -> '2', 0.25 -> '0.2', 86400.0 -> '86400' (no exponent notation)."""
    return f"{value:.1f}".removesuffix(".0")


def status_error(status: int, url: str, message: str, headers: Any, hints: Mapping[int, str]) -> ProposerError:
    """The proposer error of an HTTP error response; `hints` name the fix of each permanent status."""
    head = f"{status} {REASONS.get(status, 'HTTP error')} from {url}"
    said = f" (server said: {message})" if message else ""
    if status == 429:
        wait = retry_after_seconds(headers)
        when = f", retry after {seconds_text(wait)} s" if wait is not None else ", no Retry-After given"
        return TransientProposerError(f"rate limited (429) by {url}{when}{said}", retry_after_s=wait)
    if status in (408, 409) or status >= 500:
        wait = retry_after_seconds(headers)
        return TransientProposerError(f"{head}: server-side failure, worth retrying{said}", retry_after_s=wait)
    hint = hints.get(status, "a client error that retrying cannot fix")
    if status in (400, 413) and is_context_overflow(message):
        hint = CONTEXT_HINT
    return PermanentProposerError(f"{head}: {hint}{said}")

"""Google's Gemini API (generateContent) through the official `google-genai` SDK (the `google-genai` extra).

Config: max_output_tokens, temperature/top_p when set, the attempt's own seed (`send_seed`), a thinking
budget when set, JSON output with a {code: string} schema when `structured_output`, and Gemini's
code-execution tool when `code_interpreter` is on. Usage is normalised: prompt = prompt + tool-use prompt
tokens, completion = candidates + thoughts (thinking is billed as output), reasoning = thoughts, cached =
cached content. The SDK's retries are off (no HttpRetryOptions): the engine retries.
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
from llm_erm.proposers.config import GEMINI_DEFAULT_MODEL
from llm_erm.proposers.http_errors import status_error
from llm_erm.proposers.pricing import cost_usd, price_of
from llm_erm.proposers.sdk_base import SdkProposer

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
KEY_ENV = "GEMINI_API_KEY"
INSTALL_HINT = "pip install 'llm-erm[google-genai]'"
HOSTED_OUTPUT_TOKENS = 20000  # thinking models need room, as GPT-5 does
OTHER_OUTPUT_TOKENS = 2048
CODE_SCHEMA = {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}


class GeminiProposer(SdkProposer):
    kind = "gemini"
    provider = "Gemini"
    default_model = GEMINI_DEFAULT_MODEL
    key_env_default = KEY_ENV
    default_base_url = GEMINI_BASE_URL
    hosted_domain = "googleapis.com"

    # -- the Proposer protocol --------------------------------------------------------------------
    def preflight(self) -> None:
        _sdk()
        self._key()
        if self.cfg.structured_output and self.cfg.code_interpreter:
            raise UsageError("Gemini cannot combine JSON output with the code-execution tool: drop "
                             "--structured-output or --code-interpreter")
        self.check_base_url()

    def output_cap(self) -> int:
        if self.cfg.max_output_tokens is not None:
            return self.cfg.max_output_tokens
        return HOSTED_OUTPUT_TOKENS if self.hosted else OTHER_OUTPUT_TOKENS

    def request_params(self) -> dict[str, Any]:
        """The generation config that shapes the answer (the SDK's snake_case names), without the seed."""
        cfg = self.cfg
        params: dict[str, Any] = {"max_output_tokens": self.output_cap()}
        for name in ("temperature", "top_p"):
            if getattr(cfg, name) is not None:
                params[name] = getattr(cfg, name)
        if cfg.thinking_budget is not None:
            params["thinking_config"] = {"thinking_budget": cfg.thinking_budget}
        if cfg.structured_output:
            params["response_mime_type"] = "application/json"
            params["response_json_schema"] = CODE_SCHEMA
        if cfg.code_interpreter:
            params["tools"] = [{"code_execution": {}}]
        return params

    def generate_config(self, types: Any, request: ProposeRequest) -> Any:
        """request_params() as the SDK's GenerateContentConfig, with the attempt's seed."""
        params = self.request_params()
        if "thinking_config" in params:
            params["thinking_config"] = types.ThinkingConfig(**params["thinking_config"])
        if "tools" in params:
            params["tools"] = [types.Tool(code_execution=types.ToolCodeExecution())]
        if self.cfg.send_seed and request.seed is not None:
            params["seed"] = request.seed
        return types.GenerateContentConfig(**params)

    def propose(self, request: ProposeRequest) -> Proposal:
        genai, types = _sdk()
        client = self._get_client()
        url = f"{self.base_url}/{API_VERSION}/models/{self.model}:generateContent"
        config = self.generate_config(types, request)
        started = time.monotonic()
        try:
            response = client.models.generate_content(model=self.model, contents=request.prompt, config=config)
        except genai.errors.APIError as exc:
            raise self._status_error(exc, url) from exc
        except ValueError as exc:  # the body was not valid JSON
            raise TransientProposerError(f"malformed response body from {url}: {exc}") from exc
        except Exception as exc:
            if _is_transport_error(exc):
                what = "timed out" if "Timeout" in type(exc).__name__ else "failed or was cut short"
                raise TransientProposerError(f"connection to {url} {what} ({type(exc).__name__}: {exc})") from exc
            raise
        try:
            return self._parse(response, time.monotonic() - started)
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
                genai, types = _sdk()
                options = types.HttpOptions(base_url=self.base_url, api_version=API_VERSION,
                                            timeout=int(self.cfg.call_timeout_s * 1000))  # milliseconds
                self._client = genai.Client(api_key=key, http_options=options)
            return self._client

    def _parse(self, response: Any, latency_s: float) -> Proposal:
        candidates = list(response.candidates or [])
        candidate = candidates[0] if candidates else None
        parts = list(getattr(getattr(candidate, "content", None), "parts", None) or [])
        text = "".join(p.text for p in parts if getattr(p, "text", None) and not getattr(p, "thought", False))
        tool_uses = sum(1 for p in parts if getattr(p, "executable_code", None) is not None)
        tool_chars = sum(len(p.code_execution_result.output or "") for p in parts
                         if getattr(p, "code_execution_result", None) is not None)
        meta = response.usage_metadata
        thoughts = int(getattr(meta, "thoughts_token_count", 0) or 0)
        usage = Usage(
            prompt_tokens=int(getattr(meta, "prompt_token_count", 0) or 0)
            + int(getattr(meta, "tool_use_prompt_token_count", 0) or 0),
            completion_tokens=int(getattr(meta, "candidates_token_count", 0) or 0) + thoughts,
            reasoning_tokens=thoughts,
            cached_tokens=int(getattr(meta, "cached_content_token_count", 0) or 0),
        )
        reason = getattr(candidate, "finish_reason", None)
        finish = getattr(reason, "value", reason)
        if candidate is None:  # the prompt itself was blocked
            blocked = getattr(getattr(response, "prompt_feedback", None), "block_reason", None)
            finish = f"blocked: {getattr(blocked, 'value', blocked)}" if blocked else "no candidate"
        model = response.model_version or self.model
        return Proposal(
            text=text, usage=usage, latency_s=latency_s, model=model,
            cost_usd=cost_usd(model if price_of(model) else self.model, usage),
            tool_uses=tool_uses, tool_results_chars=tool_chars, finish_reason=finish,
            truncated=finish == "MAX_TOKENS", response_id=getattr(response, "response_id", None),
        )

    def _status_error(self, exc: Any, url: str) -> Exception:
        message = exc.message or ""
        if exc.status:
            message = f"{exc.status}: {message}"
        hints = {
            401: f"check {self.key_env}",
            403: f"the key in {self.key_env} has no access to model {self.model!r}",
            404: f"model {self.model!r} or this endpoint does not exist",
            400: "the API refused the request parameters",
        }
        if exc.code == 400 and "api key" in message.lower():
            hints[400] = f"check {self.key_env}"
        response = getattr(exc, "response", None)
        headers = dict(getattr(response, "headers", None) or {})
        headers = {name.lower(): value for name, value in headers.items()}
        delay = _retry_delay(exc.details)
        if delay is not None and "retry-after" not in headers:
            headers["retry-after"] = delay  # Gemini says when to retry in the error's RetryInfo
        return status_error(int(exc.code), url, message, headers, hints)


def _retry_delay(details: Any) -> str | None:
    """RetryInfo.retryDelay ("17s", "0.5s") of a google.rpc error body, as seconds; None when absent."""
    error = details.get("error") if isinstance(details, dict) else None
    for item in (error or {}).get("details") or []:
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(item.get("retryDelay", "")).removesuffix("s")
            try:
                return str(max(float(delay), 0.0))
            except ValueError:
                return None
    return None


def _is_transport_error(exc: Exception) -> bool:
    """httpx's (or httpx2's) timeouts and connection errors, whichever the SDK runs on."""
    for module in ("httpx", "httpx2"):
        try:
            transport = __import__(module).TransportError
        except (ImportError, AttributeError):
            continue
        if isinstance(exc, transport):
            return True
    return False


def _sdk() -> tuple[Any, Any]:
    try:
        from google import genai
        from google.genai import errors, types  # noqa: F401 - genai.errors is read through the package
    except ImportError:
        raise UsageError(f"the gemini proposer needs Google's SDK: {INSTALL_HINT}") from None
    return genai, types

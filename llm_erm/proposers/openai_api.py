"""Proposers that ask a model through the official `openai` client: Responses API and Chat Completions.

The client's own retries are off (max_retries=0): the workflow owns retries, so one propose() call is
exactly one HTTP request. Every failure leaves as TransientProposerError (worth retrying: 429, 408,
409, 5xx, timeouts, dropped connections, truncated or malformed bodies) or PermanentProposerError
(400, 401, 403, 404, 422 and other 4xx), with a message naming the cause and the URL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlparse

import openai

from llm_erm.errors import UsageError
from llm_erm.proposers.base import (
    PermanentProposerError,
    Proposal,
    ProposeRequest,
    ProposerError,
    TransientProposerError,
    Usage,
)
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.http_errors import retry_after_seconds, status_error  # noqa: F401 - re-exported
from llm_erm.proposers.pricing import CostBasis, cost_basis, cost_usd, price_of

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
        self._n_ctx: int | None = -1  # the server's context size: -1 not asked yet, None not known

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
            "tools": self.tools(),
        }

    def tools(self) -> list[str]:
        """The tools the model may use (recorded in every row): none unless the code interpreter is on."""
        return []

    def output_cap(self) -> int:
        return self.cfg.output_tokens(is_openai_hosted(self.cfg.base_url))

    def cost_basis(self) -> CostBasis:
        """How the dry run prices a call: list price, or half of it in batch mode and on the flex tier."""
        tier = "batch" if self.cfg.batch else self.cfg.service_tier
        return cost_basis(self.cfg.model, self.output_cap(), tier)

    def propose(self, request: ProposeRequest) -> Proposal:
        client = self._get_client()
        url = f"{client.base_url}{self._endpoint}"
        body = self.request_body(request)
        extra = body.pop("extra_body", None)
        started = time.monotonic()
        try:
            response = self._create(client)(**body, **({"extra_body": extra} if extra else {}))
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

    # -- the Batch API (llm_erm.engine.batch) -----------------------------------------------
    @property
    def batch_endpoint(self) -> str:
        """The endpoint a batch's requests go to, as the Batch API names it."""
        return f"/v1/{self._endpoint}"

    def batch_body(self, request: ProposeRequest) -> dict[str, Any]:
        """The JSON body of one batch line: exactly what propose() would send (extra_body merged in)."""
        body = self.request_body(request)
        return {**body.pop("extra_body", {}), **body}

    def batch_client(self) -> openai.OpenAI:
        return self._get_client()

    # The Batch API's operations, each one SDK call; an SDK error becomes a ProposerError naming `what`
    # (the engine retries the transient ones), so the engine sees no SDK.
    def batch_upload(self, name: str, data: bytes) -> str:
        """Upload a batch's JSONL input; its file id."""
        client = self._get_client()
        return self._batch_call("upload the batch input", lambda: client.files.create(
            file=(name, data, "application/jsonl"), purpose="batch")).id

    def batch_create(self, input_file_id: str, metadata: dict[str, str], window: str) -> Any:
        client = self._get_client()
        return self._batch_call("create the batch", lambda: client.batches.create(
            input_file_id=input_file_id, endpoint=self.batch_endpoint, completion_window=window, metadata=metadata))

    def batch_list(self, limit: int) -> list[Any]:
        """Up to `limit` batches of the project, newest first (the SDK pages on by itself)."""
        client = self._get_client()

        def take() -> list[Any]:
            out = []
            for batch in client.batches.list(limit=100):
                if len(out) >= limit:
                    break
                out.append(batch)
            return out

        return self._batch_call("list batches", take)

    def batch_retrieve(self, batch_id: str) -> Any:
        client = self._get_client()
        return self._batch_call("check the batch", lambda: client.batches.retrieve(batch_id))

    def batch_file_text(self, file_id: str) -> str:
        client = self._get_client()
        return self._batch_call("download the batch results", lambda: client.files.content(file_id).text)

    def _batch_call(self, what: str, call: Any) -> Any:
        try:
            return call()
        except openai.OpenAIError as exc:
            raise classify_error(exc, f"{self._get_client().base_url}", self.cfg, what) from exc

    def proposal_from_body(self, body: dict[str, Any], latency_s: float, extra: dict[str, Any]) -> Proposal:
        """The Proposal of a batch line's response body, priced at the batch rate."""
        # Built as the SDK builds a response it receives: leniently (construct), not validated strictly, so a
        # field the server leaves out does not fail an answer that was paid for.
        proposal = self._parse(self._response_type.construct(**body), latency_s, tier="batch")
        return dataclasses.replace(proposal, extra={**proposal.extra, **extra})

    # -- shared machinery -----------------------------------------------------------------
    _endpoint = ""
    _response_type: Any = None

    def request_params(self) -> dict[str, Any]:
        """The request fields that shape the answer, besides model and prompt."""
        raise NotImplementedError

    def request_body(self, request: ProposeRequest) -> dict[str, Any]:
        """Everything propose() sends, as keyword arguments of the SDK call (extra_body: fields the SDK
        does not know, merged into the JSON body)."""
        raise NotImplementedError

    def _create(self, client: openai.OpenAI) -> Any:
        raise NotImplementedError

    def _parse(self, response: Any, latency_s: float, tier: str | None = None) -> Proposal:
        raise NotImplementedError

    def _common_body(self) -> dict[str, Any]:
        # The service tier changes the price and the wait, not the answer: it is sent but not part of
        # identity(), so a flex run and a default-tier run of one grid share their answers.
        return {} if self.cfg.service_tier is None else {"service_tier": self.cfg.service_tier}

    def _served_tier(self, response: Any, tier: str | None) -> tuple[str | None, dict[str, Any]]:
        """The tier to price by (batch, else what the server says it served, else what was asked) and the
        extra fields to keep."""
        reported = getattr(response, "service_tier", None)
        extra = {"service_tier": reported} if reported else {}
        return tier or reported or self.cfg.service_tier, extra

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

    def _cost(self, reported_model: str, usage: Usage, tier: str | None = None) -> float | None:
        # The snapshot name the server reports (gpt-5-2025-08-07) prices like its base; a server
        # that renames the model falls back to the requested name.
        model = reported_model if price_of(reported_model) is not None else self.cfg.model
        return cost_usd(model, usage, tier)


class ResponsesProposer(_OpenAIProposer):
    """OpenAI Responses API: reasoning effort, text verbosity, output limit, tool choice, code interpreter."""

    kind = "openai-responses"
    _endpoint = "responses"
    _response_type = openai.types.responses.Response

    def request_params(self) -> dict[str, Any]:
        cfg = self.cfg
        params: dict[str, Any] = {"max_output_tokens": self.output_cap(), "tool_choice": cfg.tool_choice}
        for name in ("temperature", "top_p"):
            if getattr(cfg, name) is not None:
                params[name] = getattr(cfg, name)
        if cfg.reasoning_effort is not None and is_reasoning_model(cfg.model):
            params["reasoning"] = {"effort": cfg.reasoning_effort}
        if cfg.verbosity is not None and supports_verbosity(cfg.model):
            params["text"] = {"verbosity": cfg.verbosity}
        if cfg.structured_output:  # the Responses API's form of CODE_SCHEMA
            params["text"] = {**params.get("text", {}), "format": {"type": "json_schema",
                                                                  **CODE_SCHEMA["json_schema"]}}
        if cfg.code_interpreter:
            params["tools"] = [{"type": "code_interpreter", "container": {"type": "auto"}}]
            # Without this the tool's logs are not returned and their size cannot be recorded.
            params["include"] = ["code_interpreter_call.outputs"]
        if cfg.extra_body:
            params["extra_body"] = dict(cfg.extra_body)
        return params

    def tools(self) -> list[str]:
        return ["code_interpreter"] if self.cfg.code_interpreter else []

    def request_body(self, request: ProposeRequest) -> dict[str, Any]:
        return {"model": self.cfg.model, "input": [{"role": "user", "content": request.prompt}],
                **self.request_params(), **self._common_body()}

    def _create(self, client: openai.OpenAI) -> Any:
        return client.responses.create

    def _parse(self, response: Any, latency_s: float, tier: str | None = None) -> Proposal:
        tier, extra = self._served_tier(response, tier)
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
            cost_usd=self._cost(model, usage, tier),
            tool_uses=len(tool_calls),
            tool_results_chars=tool_chars,
            finish_reason=incomplete or status,
            truncated=incomplete in ("max_output_tokens", "max_tokens"),
            response_id=response.id,
            extra=extra,
        )


class ChatProposer(_OpenAIProposer):
    """Chat Completions, for any OpenAI-compatible server (vLLM, Ollama, Azure, gateways)."""

    kind = "openai-chat"
    _endpoint = "chat/completions"
    _response_type = openai.types.chat.ChatCompletion

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

    def _chat_params(self) -> dict[str, Any]:
        cfg = self.cfg
        params: dict[str, Any] = {self.max_tokens_param(): self.output_cap()}
        if cfg.reasoning_effort is not None and is_reasoning_model(cfg.model):
            params["reasoning_effort"] = cfg.reasoning_effort
        for name in ("temperature", "top_p"):
            if getattr(cfg, name) is not None:
                params[name] = getattr(cfg, name)
        if cfg.structured_output:
            params["response_format"] = CODE_SCHEMA
        return params

    def request_body(self, request: ProposeRequest) -> dict[str, Any]:
        seed = {"seed": request.seed} if self.cfg.send_seed and request.seed is not None else {}
        return {"model": self.cfg.model, "messages": [{"role": "user", "content": request.prompt}],
                **self.request_params(), **seed, **self._common_body()}

    def request_params(self) -> dict[str, Any]:
        params = self._chat_params()
        if self.cfg.extra_body:
            params["extra_body"] = dict(self.cfg.extra_body)  # it shapes the answer: part of the identity
        return params

    def _create(self, client: openai.OpenAI) -> Any:
        return client.chat.completions.create

    def _parse(self, response: Any, latency_s: float, tier: str | None = None) -> Proposal:
        tier, extra = self._served_tier(response, tier)
        choice = response.choices[0]
        usage = _chat_usage(getattr(response, "usage", None))
        model = response.model or self.cfg.model
        return Proposal(
            text=choice.message.content or "",
            usage=usage,
            latency_s=latency_s,
            model=model,
            cost_usd=self._cost(model, usage, tier),
            finish_reason=choice.finish_reason,
            truncated=choice.finish_reason == "length",
            response_id=response.id,
            extra=extra,
        )

    # -- context overflow, refused before the grid starts --------------------------------------
    def _server_root(self) -> str:
        return (self.cfg.base_url or "").rstrip("/").removesuffix("/v1")

    def check_prompt(self, prompt: str) -> None:
        """UsageError when this prompt plus the output cap cannot fit the server's context.

        Only where the server says how large its context is and tokenizes for us (llama.cpp: GET /props,
        POST /apply-template and /tokenize, which count exactly what a request costs); elsewhere nothing is
        checked and an overflow is the call's permanent error, which names the same fixes."""
        n_ctx = self.server_context()
        tokens = self.prompt_tokens(prompt) if n_ctx is not None else None
        if n_ctx is None or tokens is None:
            return
        cap = self.output_cap()
        if tokens + cap <= n_ctx:
            return
        room = n_ctx - tokens
        lower = f"lower --max-output-tokens to {room} or less, " if room >= 64 else ""
        needed = 1 << (tokens + cap - 1).bit_length()
        raise UsageError(
            f"a prompt of {tokens:,} tokens plus the output cap of {cap:,} exceed the {n_ctx:,}-token context of "
            f"the server at {self.cfg.base_url}: {lower}shorten the prompt (--train-size), or restart the server "
            f"with a context of {needed:,} (llama.cpp: --ctx-size {needed}; llm-erm local-model serve "
            f"--ctx-size {needed})"
        )

    def prompt_tokens(self, prompt: str) -> int | None:
        """The prompt tokens a request with this prompt costs, counted by the server; None when it does not
        count for us (only llama.cpp does: its chat template applied, then its tokenizer)."""
        if is_openai_hosted(self.cfg.base_url) or self.server_context() is None:
            return None
        return _llama_cpp_prompt_tokens(self._server_root(), prompt)

    def server_context(self) -> int | None:
        """The context of one request on the server (llama.cpp: per slot), asked once; None: not said."""
        if is_openai_hosted(self.cfg.base_url):
            return None
        root = self._server_root()
        with self._lock:
            if self._n_ctx == -1:
                props = _get_json(f"{root}/props")
                settings = props.get("default_generation_settings") if isinstance(props, dict) else None
                n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
                self._n_ctx = n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None
            return self._n_ctx


# -- a local server's context and tokenizer (llama.cpp) -------------------------------------------
PROBE_TIMEOUT_S = 10.0


def _get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST `body` to) a URL and parse its JSON; None when it fails in any way (then nothing is
    known: the check is skipped, never a false refusal)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _llama_cpp_prompt_tokens(root: str, prompt: str) -> int | None:
    """Tokens a chat request with this prompt costs on a llama.cpp server: the prompt in the model's chat
    template, tokenized by the server (equal to the usage it reports)."""
    templated = _get_json(f"{root}/apply-template", {"messages": [{"role": "user", "content": prompt}]})
    text = templated.get("prompt") if isinstance(templated, dict) else None
    tokens = _get_json(f"{root}/tokenize", {"content": text if isinstance(text, str) else prompt})
    found = tokens.get("tokens") if isinstance(tokens, dict) else None
    return len(found) if isinstance(found, list) else None


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
def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return exc.response.text[:200].strip() if exc.response is not None else ""


def classify_error(exc: openai.OpenAIError, url: str, cfg: ProposerConfig, what: str | None = None) -> ProposerError:
    """An openai client error as TransientProposerError (worth retrying) or PermanentProposerError, its
    message naming the cause (and, given `what`, the step that failed: "could not create the batch: ...")."""
    error = _classify(exc, url, cfg)
    if what is None:
        return error
    if isinstance(error, TransientProposerError):
        return TransientProposerError(f"could not {what}: {error}", retry_after_s=error.retry_after_s)
    return PermanentProposerError(f"could not {what}: {error}")


def _classify(exc: openai.OpenAIError, url: str, cfg: ProposerConfig) -> ProposerError:
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

    hints = {
        401: f"check {cfg.api_key_env}",
        403: f"the key in {cfg.api_key_env} has no access to model {cfg.model!r} or this endpoint",
        404: f"model {cfg.model!r} or this endpoint does not exist on this server",
        400: "the server refused the request parameters",
        422: "the server refused the request parameters",
    }
    headers = exc.response.headers if exc.response is not None else None
    return status_error(exc.status_code, url, _server_message(exc), headers, hints)


# For the other OpenAI-compatible callers (the icl method): the same usage reading.
chat_usage = _chat_usage

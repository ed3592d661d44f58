"""A small OpenAI-compatible HTTP server on 127.0.0.1, for tests, benchmarks and offline replay.

It speaks POST /v1/responses, POST /v1/chat/completions and GET /v1/models in the real wire format
(ids, object types, message/output_text items, usage blocks with their details fields), and the Files
and Batches endpoints of the Batch API (llm_erm.wire.batches), so the official `openai`
client, or any other client, talks to it as to the real API. What it says comes from a pluggable
`answer(endpoint, body)` callback; faults can be injected for the next requests (latency, 429 with or
without Retry-After, 5xx, a hang, a truncated or malformed body, a dropped connection) or at a seeded
random rate. Every request is counted and its body recorded.

The product uses it as `llm-erm replay-server` (answers from a recording, llm_erm.proposers.replay); tests
and benchmarks script it. The fakes of other providers' APIs (Anthropic's Messages, Gemini's
generateContent, in llm_erm.testing) subclass WireServer with a handler of their own (`handler_class`):
recording, faults, keys and the HTTP plumbing are shared. Fault injection stays here, not in
llm_erm.testing, because it lives in that shared plumbing (every dialect's do_GET/do_POST applies it);
nothing in the product injects a fault.

    with WireServer(lambda endpoint, body: '{"code": "def f(x): return 0"}') as server:
        client = openai.OpenAI(base_url=server.url, api_key="test", max_retries=0)
        server.inject(Fault.rate_limit(retry_after="2"))
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_erm.wire.batches import BatchError, BatchStore

ENDPOINTS = ("responses", "chat/completions", "completions")
FAULT_KINDS = ("status", "hang", "truncate", "malformed", "reset", "delay")
DEFAULT_ANSWER = '{"code": "def f(x):\\n    return 0"}'


@dataclass(frozen=True)
class Reply:
    """What the model says, with the usage to report. None token counts are estimated from the text."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    model: str | None = None  # None: echo the requested model
    code_interpreter_calls: tuple[tuple[str, str], ...] = ()  # (code, logs) pairs: tool calls and their output
    truncated: bool = False  # the answer hit the output cap (each API says so its own way)


class WireError(Exception):
    """Raised by an answer callback to reply with an HTTP error and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, applied to one request."""

    kind: str  # one of FAULT_KINDS
    status: int = 0
    retry_after: str | None = None  # the Retry-After header value, verbatim
    seconds: float = 0.0
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}: use one of {', '.join(FAULT_KINDS)}")

    @classmethod
    def rate_limit(cls, retry_after: str | None = None) -> Fault:
        return cls("status", 429, retry_after, message="Rate limit reached for requests")

    @classmethod
    def http_error(cls, status: int, message: str = "", retry_after: str | None = None) -> Fault:
        return cls("status", status, retry_after, message=message or f"injected HTTP {status}")

    @classmethod
    def hang(cls, seconds: float) -> Fault:
        """Say nothing for `seconds` (longer than the client's timeout), then drop the connection."""
        return cls("hang", seconds=seconds)

    @classmethod
    def truncated(cls) -> Fault:
        """Announce a full body, send half of it, then close the connection."""
        return cls("truncate")

    @classmethod
    def malformed(cls) -> Fault:
        """A 200 whose JSON body is cut off mid-object (complete at the HTTP level)."""
        return cls("malformed")

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without a response."""
        return cls("reset")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally after `seconds`."""
        return cls("delay", seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    body: Any  # the parsed JSON body (None for GET or an unparsable body)
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


AnswerFn = Callable[[str, dict[str, Any]], "str | Reply"]


def prompt_of(body: dict[str, Any]) -> str:
    """The user text of a Responses, Chat, Anthropic Messages or Gemini request body (user messages joined
    by blank lines)."""
    if isinstance(body.get("input"), str):
        return body["input"]
    if isinstance(body.get("prompt"), str):  # the legacy Completions endpoint
        return body["prompt"]
    if "contents" in body:  # Gemini: contents[].parts[].text
        contents = body["contents"]
        if isinstance(contents, str):
            return contents
        return "\n\n".join(part["text"] for content in contents or [] if isinstance(content, dict)
                            and content.get("role", "user") == "user" for part in content.get("parts") or []
                            if isinstance(part, dict) and isinstance(part.get("text"), str))
    messages = body.get("input") if "input" in body else body.get("messages")
    texts = []
    for message in messages or []:
        if not isinstance(message, dict) or message.get("role", "user") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and part.get("type") in ("input_text", "text")
            )
    return "\n\n".join(texts)


class WireServer:
    """The server; start() or `with` runs it in a background thread on an ephemeral port."""

    def __init__(
        self,
        answer: AnswerFn | None = None,
        *,
        port: int = 0,
        latency_s: float = 0.0,
        transient_rate: float = 0.0,
        seed: int = 0,
        api_key: str | None = None,
        models: tuple[str, ...] = ("gpt-5",),
    ):
        """latency_s delays every answer; transient_rate is the chance (seeded) that a request gets a
        random 429/500/503 instead; api_key, when set, makes requests without it get a 401."""
        self.answer: AnswerFn = answer or (lambda endpoint, body: DEFAULT_ANSWER)
        self.latency_s = latency_s
        self.transient_rate = transient_rate
        self.api_key = api_key
        self.models = models
        self._random = random.Random(seed)
        self._faults: deque[Fault] = deque()
        self._records: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", port), self.handler_class())
        self._httpd.wire = self
        self._thread: threading.Thread | None = None
        self.batches = BatchStore(ENDPOINTS, self._answer_line)  # the Files and Batches endpoints' state

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        """The request handler: which API this server speaks."""
        return _Handler

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The base URL to give a client: http://127.0.0.1:<port>/v1"""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> WireServer:
        if self._thread is None:
            # A short poll interval makes close() prompt (shutdown waits for one poll).
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="wire-server", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()  # wakes hanging and delayed handlers
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the replay-server command)."""
        try:
            self._httpd.serve_forever()
        finally:
            self._stopping.set()
            self._httpd.server_close()

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scripting ------------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, one fault per request, in order."""
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget pending faults and recorded requests."""
        with self._lock:
            self._faults.clear()
            self._records.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def calls(self) -> int:
        """The model calls (POST requests) received."""
        with self._lock:
            return sum(r.method == "POST" for r in self._records)

    # -- used by the handler ----------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> Fault | None:
        """Record the request and pick the fault it gets (if any): faults are for model calls (POST), not for
        the lookups a client makes beside them (GET /v1/models, a llama.cpp server's /props)."""
        with self._lock:
            self._records.append(request)
            if request.method != "POST":
                return None
            if self._faults:
                return self._faults.popleft()
            if self.transient_rate and self._random.random() < self.transient_rate:
                status = self._random.choice((429, 500, 503))
                return Fault("status", status, "0" if status == 429 else None, message="injected random fault")
        return None

    def _answer_line(self, endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """A batch line's response (status, body): what the same request made alone would get, without the
        server's latency and faults (a batch is answered as a whole, later)."""
        try:
            reply = self.answer(endpoint, body)
        except WireError as exc:
            return exc.status, {"error": {"message": exc.message, "type": "invalid_request_error", "param": None,
                                          "code": exc.code}}
        return 200, openai_object(endpoint, body, Reply(reply) if isinstance(reply, str) else reply)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler never blocks close()
    request_queue_size = 128  # bursts of concurrent grid calls queue instead of being refused
    wire: WireServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that went away (killed) is no news
            super().handle_error(request, client_address)


class WireHandler(BaseHTTPRequestHandler):
    """What every API's handler shares: recording, faults, keys, JSON in and out. A subclass implements
    `handle_get` and `handle_post`, and says how its API words an error and checks a key."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK clients expect
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms stall
    server_version = "llm-erm-wire/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by design
        pass

    @property
    def wire(self) -> WireServer:
        return self.server.wire  # type: ignore[attr-defined]  # self.server is our _HTTPServer

    # -- entry points ---------------------------------------------------------------------
    def do_GET(self) -> None:
        fault = self.wire._record(RecordedRequest("GET", self.path, None, self._headers()))
        if self._apply_fault(fault) or not self._authorised():
            return
        self.handle_get(self.path.split("?", 1)[0].rstrip("/"))

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        fault = self.wire._record(RecordedRequest("POST", self.path, body, self._headers()))
        if self._apply_fault(fault) or not self._authorised():
            return
        self.handle_post(self.path.split("?", 1)[0].rstrip("/"), body, raw)

    # -- what a dialect implements -----------------------------------------------------------
    def handle_get(self, path: str) -> None:
        self._send_error(404, f"no route GET {self.path}", "not_found")

    def handle_post(self, path: str, body: Any, raw: bytes) -> None:
        self._send_error(404, f"no route POST {self.path}", "not_found")

    def error_payload(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        kind = "invalid_request_error" if status < 500 and status != 429 else (
            "rate_limit_error" if status == 429 else "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def key_given(self) -> str | None:
        """The API key the request carries."""
        value = self.headers.get("Authorization") or ""
        return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None

    # -- pieces ---------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _authorised(self) -> bool:
        key = self.wire.api_key
        if key is None or self.key_given() == key:
            return True
        self._send_error(401, "Incorrect API key provided.", "invalid_api_key")
        return False

    def _answer(self, endpoint: str, body: dict[str, Any]) -> Reply | None:
        """The scripted answer (after the server's latency); None when an error was sent instead."""
        self.wire._sleep(self.wire.latency_s)
        try:
            reply = self.wire.answer(endpoint, body)
        except WireError as exc:
            self._send_error(exc.status, exc.message, exc.code)
            return None
        return Reply(reply) if isinstance(reply, str) else reply

    def _apply_fault(self, fault: Fault | None) -> bool:
        """Act out the fault; True when the request is finished with."""
        if fault is None:
            return False
        if fault.kind == "delay":
            self.wire._sleep(fault.seconds)
            return False
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._send_error(fault.status, fault.message, "injected", headers)
        elif fault.kind == "hang":
            self.wire._sleep(fault.seconds)
            self.close_connection = True
        elif fault.kind == "reset":
            self.close_connection = True
        elif fault.kind == "truncate":
            payload = json.dumps({"id": "resp_truncated", "object": "response", "output": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.close_connection = True
        else:  # malformed
            self._send_bytes(200, b'{"id": "resp_malformed", "object": "response", "output": [', {})
        return True

    def _send_error(self, status: int, message: str, code: str | None, headers: dict[str, str] | None = None):
        self._send_bytes(status, json.dumps(self.error_payload(status, message, code)).encode(), headers or {})

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), {})

    def _send_bytes(self, status: int, payload: bytes, headers: dict[str, str],
                    content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to tell it


class _Handler(WireHandler):
    """OpenAI's API: Responses, Chat Completions, models, and the Batch API's Files and Batches."""

    def handle_get(self, path: str) -> None:
        if path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "llm-erm"} for m in self.wire.models]
            self._send_json(200, {"object": "list", "data": data})
        elif path.startswith(("/v1/files", "/v1/batches")):
            self._batch_api("GET", path, None, b"")
        else:
            self._send_error(404, f"no route GET {self.path}", "not_found")

    def handle_post(self, path: str, body: Any, raw: bytes) -> None:
        if path.startswith(("/v1/files", "/v1/batches")):
            self._batch_api("POST", path, body, raw)
            return
        endpoint = path.removeprefix("/v1/")
        if endpoint not in ENDPOINTS:
            self._send_error(404, f"no route POST {self.path}: this server speaks /v1/responses, "
                             "/v1/chat/completions and /v1/completions", "not_found")
            return
        if not isinstance(body, dict):
            self._send_error(400, "the request body is not a JSON object", "invalid_json")
            return
        if body.get("stream"):
            self._send_error(400, "streaming is not supported by this server: send stream=false", "unsupported")
            return
        reply = self._answer(endpoint, body)
        if reply is not None:
            self._send_json(200, openai_object(endpoint, body, reply))

    def _batch_api(self, method: str, path: str, body: Any, raw: bytes) -> None:
        try:
            payload, content_type = self.wire.batches.handle(method, path, self.path.partition("?")[2], body, raw,
                                                             self.headers.get("Content-Type", ""))
        except BatchError as exc:
            self._send_error(exc.status, exc.message, exc.code)
            return
        if isinstance(payload, bytes):
            self._send_bytes(200, payload, {}, content_type)
        else:
            self._send_json(200, payload)


# -- wire objects -------------------------------------------------------------------------------
def _tokens(reply: Reply, prompt: str) -> tuple[int, int]:
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, len(prompt) // 4)
    completion = reply.completion_tokens
    if completion is None:
        completion = max(1, len(reply.text) // 4) + reply.reasoning_tokens
    return prompt_tokens, completion


def openai_object(endpoint: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """The success body of an OpenAI endpoint ("responses", "chat/completions", "completions") for this reply."""
    return {"responses": _responses_object, "chat/completions": _chat_object,
            "completions": _completions_object}[endpoint](body, reply)


def _responses_object(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt_tokens, completion = _tokens(reply, prompt_of(body))
    output: list[dict[str, Any]] = []
    if reply.reasoning_tokens:
        output.append({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}", "summary": []})
    for code, logs in reply.code_interpreter_calls:
        output.append({
            "type": "code_interpreter_call", "id": f"ci_{uuid.uuid4().hex}", "status": "completed",
            "code": code, "container_id": f"cntr_{uuid.uuid4().hex}", "outputs": [{"type": "logs", "logs": logs}],
        })
    output.append({
        "type": "message", "id": f"msg_{uuid.uuid4().hex}", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
    })
    return {
        "id": f"resp_{uuid.uuid4().hex}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if reply.truncated else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if reply.truncated else None,
        "service_tier": body.get("service_tier") if body.get("service_tier") not in (None, "auto") else "default",
        "instructions": None,
        "model": reply.model or body.get("model", ""),
        "output": output,
        "parallel_tool_calls": True,
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": 1.0,
        "top_p": 1.0,
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": reply.cached_tokens},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            "total_tokens": prompt_tokens + completion,
        },
    }


def _chat_object(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt_tokens, completion = _tokens(reply, prompt_of(body))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", ""),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.text, "refusal": None},
            "finish_reason": "length" if reply.truncated else "stop",
            "logprobs": None,
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        },
        "system_fingerprint": None,
        "service_tier": body.get("service_tier") if body.get("service_tier") not in (None, "auto") else "default",
    }


def _completions_object(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """The legacy Completions endpoint's answer (vLLM and llama.cpp serve it: no chat template)."""
    prompt_tokens, completion = _tokens(reply, prompt_of(body))
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": reply.model or body.get("model", ""),
        "choices": [{"index": 0, "text": reply.text, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                  "total_tokens": prompt_tokens + completion},
    }

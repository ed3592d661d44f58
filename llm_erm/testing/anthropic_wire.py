"""Anthropic's Messages API on 127.0.0.1, for tests: POST /v1/messages and GET /v1/models in the real wire
format (message object, content blocks, usage with cache fields, error envelope, request-id header), so
the official `anthropic` SDK talks to it as to the real API. A Reply's code_interpreter_calls become
code-execution blocks (server_tool_use + bash_code_execution_tool_result). Faults, recording and keys
work as on WireServer (the key travels in x-api-key or as a bearer token).

    with AnthropicWireServer(lambda endpoint, body: '{"code": "def f(x): return 0"}') as server:
        client = anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0)
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from llm_erm.wire.server import Reply, WireHandler, WireServer, prompt_of

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


class AnthropicWireServer(WireServer):
    def __init__(self, answer=None, **kwargs: Any):
        kwargs.setdefault("models", ("claude-sonnet-4-5",))
        super().__init__(answer, **kwargs)

    def handler_class(self) -> type[WireHandler]:
        return _AnthropicHandler

    @property
    def url(self) -> str:
        """The base URL the SDK takes (it adds /v1/messages itself)."""
        return f"http://127.0.0.1:{self.port}"


class _AnthropicHandler(WireHandler):
    def key_given(self) -> str | None:
        # Older SDKs send x-api-key; recent ones send the same key as a bearer token.
        return self.headers.get("x-api-key") or super().key_given()

    def error_payload(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _send_error(self, status: int, message: str, code: str | None, headers: dict[str, str] | None = None):
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **(headers or {})}
        self._send_bytes(status, json.dumps(self.error_payload(status, message, code)).encode(), headers)

    def handle_get(self, path: str) -> None:
        if path == "/v1/models":
            data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                    for m in self.wire.models]
            self._send_json(200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None})
        else:
            self._send_error(404, f"no route GET {self.path}", None)

    def handle_post(self, path: str, body: Any, raw: bytes) -> None:
        if path != "/v1/messages":
            self._send_error(404, f"no route POST {self.path}: this server speaks /v1/messages", None)
            return
        if not isinstance(body, dict):
            self._send_error(400, "the request body is not a JSON object", None)
            return
        missing = [name for name in ("model", "max_tokens", "messages") if name not in body]
        if missing:
            self._send_error(400, f"{missing[0]}: Field required", None)
            return
        if body.get("stream"):
            self._send_error(400, "streaming is not supported by this server: send stream=false", None)
            return
        reply = self._answer("messages", body)
        if reply is not None:
            self._send_bytes(200, json.dumps(message_object(body, reply)).encode(),
                             {"request-id": f"req_{uuid.uuid4().hex[:24]}"})


def message_object(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt = prompt_of(body)
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, len(prompt) // 4)
    completion = reply.completion_tokens
    if completion is None:
        completion = max(1, len(reply.text) // 4) + reply.reasoning_tokens
    content: list[dict[str, Any]] = []
    if reply.reasoning_tokens:
        content.append({"type": "thinking", "thinking": "Looking at the examples.", "signature": "c2ln"})
    for code, logs in reply.code_interpreter_calls:
        tool_id = f"srvtoolu_{uuid.uuid4().hex[:24]}"
        content.append({"type": "server_tool_use", "id": tool_id, "name": "bash_code_execution",
                        "input": {"command": f"python3 -c {json.dumps(code)}"}})
        content.append({"type": "bash_code_execution_tool_result", "tool_use_id": tool_id,
                        "content": {"type": "bash_code_execution_result", "stdout": logs, "stderr": "",
                                    "return_code": 0, "content": []}})
    content.append({"type": "text", "text": reply.text, "citations": None})
    message: dict[str, Any] = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or body.get("model", ""),
        "content": content,
        "stop_reason": "max_tokens" if reply.truncated else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt_tokens - reply.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": completion,
            "output_tokens_details": {"thinking_tokens": reply.reasoning_tokens},
            "service_tier": "standard",
        },
    }
    if reply.code_interpreter_calls:
        message["container"] = {"id": f"container_{uuid.uuid4().hex[:24]}", "expires_at": "2026-12-01T00:00:00Z"}
    return message

"""Google's Gemini API on 127.0.0.1, for tests: POST /v1beta/models/{model}:generateContent and GET
/v1beta/models in the real wire format (camelCase candidates, parts, usageMetadata, modelVersion,
responseId; the google.rpc error envelope with RetryInfo), so the official `google-genai` SDK talks to it
as to the real API. A Reply's code_interpreter_calls become executableCode / codeExecutionResult parts.
Faults, recording and keys work as on WireServer (the key travels in x-goog-api-key or ?key=).

    with GeminiWireServer(lambda endpoint, body: '{"code": "def f(x): return 0"}') as server:
        client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url))
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

from llm_erm.wire.server import Reply, WireHandler, WireServer, prompt_of

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
PREFIX = "/v1beta/models/"


class GeminiWireServer(WireServer):
    def __init__(self, answer=None, **kwargs: Any):
        kwargs.setdefault("models", ("gemini-2.5-pro",))
        super().__init__(answer, **kwargs)

    def handler_class(self) -> type[WireHandler]:
        return _GeminiHandler

    @property
    def url(self) -> str:
        """The base URL the SDK takes (it adds /v1beta/models/... itself)."""
        return f"http://127.0.0.1:{self.port}"


class _GeminiHandler(WireHandler):
    def key_given(self) -> str | None:
        return self.headers.get("x-goog-api-key") or parse_qs(self.path.partition("?")[2]).get("key", [None])[0]

    def error_payload(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {"code": status, "message": message,
                                 "status": STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")}
        if status == 429:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
        return {"error": error}

    def handle_get(self, path: str) -> None:
        if path == "/v1beta/models":
            self._send_json(200, {"models": [{"name": f"models/{m}", "displayName": m} for m in self.wire.models]})
        else:
            self._send_error(404, f"no route GET {self.path}", None)

    def handle_post(self, path: str, body: Any, raw: bytes) -> None:
        model, _, method = path.removeprefix(PREFIX).partition(":")
        if not path.startswith(PREFIX) or method != "generateContent":
            self._send_error(404, f"no route POST {self.path}: this server speaks {PREFIX}MODEL:generateContent", None)
            return
        if not isinstance(body, dict) or not body.get("contents"):
            self._send_error(400, "* GenerateContentRequest.contents: contents is not specified", None)
            return
        reply = self._answer("generateContent", {**body, "model": model})
        if reply is not None:
            self._send_json(200, generate_content_object(model, body, reply))


def generate_content_object(model: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt = prompt_of(body)
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, len(prompt) // 4)
    completion = reply.completion_tokens
    if completion is None:
        completion = max(1, len(reply.text) // 4) + reply.reasoning_tokens
    parts: list[dict[str, Any]] = []
    for code, logs in reply.code_interpreter_calls:
        parts.append({"executableCode": {"language": "PYTHON", "code": code}})
        parts.append({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": logs}})
    parts.append({"text": reply.text})
    usage = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": completion - reply.reasoning_tokens,  # Gemini counts thoughts apart
        "totalTokenCount": prompt_tokens + completion,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if reply.reasoning_tokens:
        usage["thoughtsTokenCount"] = reply.reasoning_tokens
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    return {
        "candidates": [{"content": {"parts": parts, "role": "model"},
                        "finishReason": "MAX_TOKENS" if reply.truncated else "STOP", "index": 0}],
        "usageMetadata": usage,
        "modelVersion": reply.model or model,
        "responseId": uuid.uuid4().hex[:22],
    }


def generation_config(body: dict[str, Any]) -> dict[str, Any]:
    """The request's generationConfig (where its seed, cap and sampling settings are)."""
    config = body.get("generationConfig")
    return config if isinstance(config, dict) else {}

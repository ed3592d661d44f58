"""The Batch API of the wire server (llm_erm.wire.server): OpenAI's Files and Batches endpoints, in their wire format.

    POST /v1/files (multipart: purpose=batch, file)   GET /v1/files/{id}, /v1/files/{id}/content
    POST /v1/batches {input_file_id, endpoint, completion_window, metadata}
    GET  /v1/batches/{id}, /v1/batches?limit=&after=   POST /v1/batches/{id}/cancel

A batch's lines are answered by the server's own `answer(endpoint, body)` callback, as the same requests
made one by one would be, into an output file (status 200) and an error file (the rest). When they are
answered is the test's choice: at once (`hold=False`, the default), or only on `release()` — a batch
then stays `in_progress`, however often it is looked at, so a client can be killed while it waits.
`release(status="expired", answer=n)` ends it as the real API does after 24 h: n lines answered, the
others in the error file.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

# The store knows nothing of the server: it gets the endpoints it accepts and a function that answers one
# line as the server would answer the same request, and hands back (status, payload) for the handler to
# send. So llm_erm.wire.server imports this module and this module imports nothing of the server.
LineAnswer = Callable[[str, dict[str, Any]], "tuple[int, dict[str, Any]]"]  # (endpoint, body) -> (status, body)
FINAL = ("completed", "failed", "expired", "cancelled")


class BatchError(Exception):
    """A refused Files or Batches request: the handler replies with this status and an error body."""

    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


class BatchStore:
    """Files and batches of one server (thread-safe)."""

    def __init__(self, endpoints: tuple[str, ...], answer_line: LineAnswer, hold: bool = False):
        self.endpoints = tuple(f"/v1/{endpoint}" for endpoint in endpoints)  # a batch's `endpoint` values
        self.answer_line = answer_line
        self.hold = hold  # True: batches wait for release()
        self.files: dict[str, dict[str, Any]] = {}  # id -> file object (+ "_data": bytes)
        self.batches: dict[str, dict[str, Any]] = {}  # id -> batch object
        self.created: list[str] = []  # batch ids in creation order
        self._lock = threading.Lock()

    # -- the test's levers --------------------------------------------------------------------
    def release(self, batch_id: str | None = None, status: str = "completed", answer: int | None = None) -> None:
        """End held batches (one, or every pending one): answer their lines (`answer` of them, when
        set) and mark them `status` (completed, expired, failed, cancelled)."""
        with self._lock:
            ids = [batch_id] if batch_id else [i for i in self.created if self.batches[i]["status"] not in FINAL]
        for bid in ids:
            self._run(bid, status, answer)

    def lines(self, batch_id: str) -> list[dict[str, Any]]:
        """The request lines of a batch's input file."""
        with self._lock:
            data = self.files[self.batches[batch_id]["input_file_id"]]["_data"]
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]

    # -- the endpoints -------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, body: Any, raw: bytes,
               content_type: str) -> tuple[dict[str, Any] | bytes, str]:
        """One Files or Batches request (path without the query): the 200 payload and its content type;
        BatchError for a refusal."""
        parts = path.removeprefix("/v1/").split("/")
        if parts[0] == "files":
            if method == "POST" and len(parts) == 1:
                return self._upload(raw, content_type), "application/json"
            if method == "GET" and len(parts) == 2:
                return self._public(self._file(parts[1])), "application/json"
            if method == "GET" and len(parts) == 3 and parts[2] == "content":
                return self._file(parts[1])["_data"], "application/octet-stream"
        elif parts[0] == "batches":
            if method == "POST" and len(parts) == 1:
                return self._create(body), "application/json"
            if method == "GET" and len(parts) == 1:
                fields = parse_qs(query)
                return self._list(int(fields.get("limit", ["20"])[0]), fields.get("after", [None])[0]), \
                    "application/json"
            if method == "GET" and len(parts) == 2:
                return self._batch(parts[1]), "application/json"
            if method == "POST" and len(parts) == 3 and parts[2] == "cancel":
                self._batch(parts[1])
                self._run(parts[1], "cancelled", 0)
                return self._batch(parts[1]), "application/json"
        raise BatchError(404, f"no route {method} {path}", "not_found")

    def _upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        if not content_type.startswith("multipart/form-data"):
            raise BatchError(400, "POST /v1/files takes multipart/form-data (purpose, file)", "invalid_request")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "file" not in fields or fields.get("purpose", (None, b""))[1].decode() != "batch":
            raise BatchError(400, "a batch input file needs purpose=batch and a file part", "invalid_request")
        filename, data = fields["file"]
        try:
            for number, line in enumerate(data.decode().splitlines(), 1):
                if line.strip():
                    request = json.loads(line)
                    if not {"custom_id", "method", "url", "body"} <= set(request):
                        raise ValueError(f"line {number} lacks custom_id, method, url or body")
        except (UnicodeDecodeError, ValueError) as exc:
            raise BatchError(400, f"the batch input file is not valid JSONL: {exc}", "invalid_file") from None
        file = {"id": f"file-{uuid.uuid4().hex[:24]}", "object": "file", "bytes": len(data),
                "created_at": int(time.time()), "filename": filename or "input.jsonl", "purpose": "batch",
                "status": "processed", "status_details": None, "_data": data}
        with self._lock:
            self.files[file["id"]] = file
        return self._public(file)

    def _create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BatchError(400, "the request body is not a JSON object", "invalid_json")
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        with self._lock:
            if file_id not in self.files:
                raise BatchError(404, f"no file {file_id!r}", "not_found")
        if endpoint not in self.endpoints:
            raise BatchError(400, f"endpoint must be one of {', '.join(self.endpoints)}", "invalid_endpoint")
        if body.get("completion_window") != "24h":
            raise BatchError(400, "completion_window must be 24h", "invalid_completion_window")
        lines = self._file(file_id)["_data"].decode().splitlines()
        for line in lines:
            if line.strip() and json.loads(line)["url"] != endpoint:
                raise BatchError(400, f"every line's url must be the batch's endpoint {endpoint}", "mismatched_url")
        now = int(time.time())
        batch = {
            "id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch", "endpoint": endpoint, "errors": None,
            "input_file_id": file_id, "completion_window": "24h", "status": "in_progress", "output_file_id": None,
            "error_file_id": None, "created_at": now, "in_progress_at": now, "expires_at": now + 86400,
            "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
            "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": sum(1 for line in lines if line.strip()), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        with self._lock:
            self.batches[batch["id"]] = batch
            self.created.append(batch["id"])
        if not self.hold:
            self._run(batch["id"], "completed", None)
        return self._batch(batch["id"])

    def _list(self, limit: int, after: str | None) -> dict[str, Any]:
        with self._lock:
            newest_first = list(reversed(self.created))
        start = newest_first.index(after) + 1 if after in newest_first else 0
        page = [self._batch(i) for i in newest_first[start:start + limit]]
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": start + limit < len(newest_first)}

    # -- running a batch -----------------------------------------------------------------------
    def _run(self, batch_id: str, status: str, answer: int | None) -> None:
        with self._lock:
            batch = self.batches[batch_id]
            if batch["status"] in FINAL:
                return
            batch["status"] = "finalizing"
        requests = self.lines(batch_id)
        outputs, errors = [], []
        for number, request in enumerate(requests):
            if status == "failed" or (answer is not None and number >= answer):
                code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(status, "batch_failed")
                errors.append({"id": f"batch_req_{uuid.uuid4().hex[:24]}", "custom_id": request["custom_id"],
                               "response": None, "error": {"code": code, "message": f"the batch was {status} "
                                                           "before this request ran"}})
                continue
            status_code, body = self.answer_line(request["url"].removeprefix("/v1/"), request["body"])
            line = {"id": f"batch_req_{uuid.uuid4().hex[:24]}", "custom_id": request["custom_id"],
                    "response": {"status_code": status_code, "request_id": uuid.uuid4().hex, "body": body},
                    "error": None}
            (outputs if status_code == 200 else errors).append(line)
        now = int(time.time())
        with self._lock:
            batch["output_file_id"] = self._store_output(batch_id, "output", outputs)
            batch["error_file_id"] = self._store_output(batch_id, "error", errors)
            batch["request_counts"] = {"total": len(requests), "completed": len(outputs), "failed": len(errors)}
            batch["status"] = status
            batch["finalizing_at"] = now
            batch[{"completed": "completed_at", "failed": "failed_at", "expired": "expired_at",
                   "cancelled": "cancelled_at"}[status]] = now
            if status == "failed":
                batch["errors"] = {"object": "list", "data": [{"code": "failed", "message": "the batch failed",
                                                               "param": None, "line": None}]}

    def _store_output(self, batch_id: str, kind: str, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        file = {"id": f"file-{uuid.uuid4().hex[:24]}", "object": "file", "bytes": len(data),
                "created_at": int(time.time()), "filename": f"{batch_id}_{kind}.jsonl", "purpose": "batch_output",
                "status": "processed", "status_details": None, "_data": data}
        self.files[file["id"]] = file
        return file["id"]

    # -- lookups -------------------------------------------------------------------------------
    def _file(self, file_id: str) -> dict[str, Any]:
        with self._lock:
            if file_id not in self.files:
                raise BatchError(404, f"no file {file_id!r}", "not_found")
            return self.files[file_id]

    def _batch(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            if batch_id not in self.batches:
                raise BatchError(404, f"no batch {batch_id!r}", "not_found")
            return dict(self.batches[batch_id])

    @staticmethod
    def _public(file: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in file.items() if not k.startswith("_")}

"""The answer journal: every paid model answer, on disk the moment it arrives, before it is verified.

results/<run_id>/journal/<host>-<pid>-<token>.jsonl, one file per process that ever made a call, so
workers sharing results/ (NFS included) never write to the same file. Each line is one JSON record; an
answer (written by GridRun.call in llm_erm/engine/run.py, and by the Batch API path) reads

    {"key": <request key>, "kind": "answer", "run_id", "method", "target", "length", "trial", "attempt",
     "seed", "prompt_sha256", "provider": <proposer identity>,
     <llm_erm.proposers.base.Proposal.to_dict()>: "text", "usage": {...}, "latency_s", "model", "cost_usd",
     "tool_uses", "tool_results_chars", "finish_reason", "truncated", "response_id", "extra": {...},
     "at": <UTC time>}

An in-context-learning answer (llm_erm/engine/methods.py) is the same with "kind": "icl" and a
"test_index"; the Batch API adds "batch" and "batch_end" records (llm_erm/engine/batch.py). This module
itself reads only "key" (the index) and "cost_usd" (the spend).

appended with one write(2) on an O_APPEND descriptor: a killed process leaves at most a torn last
line, which readers skip. An object store has no append, so there each answer is an object of its own,
results/<run_id>/journal/<host>-<pid>-<token>-<sequence>.json (one PUT, before the answer is verified, so
the guarantee is the same), and readers list the prefix for objects they have not read yet. The key is the request's identity (run id, provider, base URL, model, request
parameters, prompt hash, trial, attempt), so a resumed trial finds what it already paid for, and the
budget is the sum of what every process of the run spent. The journal is ours, not Prefect's: Prefect
commits a nested task's result only when the enclosing task finishes.

Lines are ASCII JSON (non-ASCII as \\u escapes): any string an API returns is stored and read back exactly,
lone surrogates included (they have no UTF-8 form). `storable_text` is the ledger's view of such a
string (Parquet strings are UTF-8): lone surrogates as backslash escapes, the journal keeping the original.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_erm.results import storage

JOURNAL_DIR = "journal"
OBJECT_SUFFIX = ".json"  # one answer per object (object stores)


def sha256_text(text: str) -> str:
    """The hash the ledger's prompt_sha256, the journal key and replay all use."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def storable_text(text: str) -> str:
    """`text` as valid UTF-8 can hold it: a lone surrogate becomes the escape \\udXXX (unchanged otherwise)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def request_key(**identity: Any) -> str:
    """The journal key of one request: a hash of its identity (JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def read_records(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete records in `path` from byte `offset`, and the offset after the last complete line.

    A torn last line (a writer killed mid-write) is not a record; it is read again next time, by which
    point it is still torn (the writer is gone) or whole (it was only half flushed when we looked).
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill and then overwritten by nothing: never a record
        if isinstance(record, dict):
            records.append(record)
    return records, offset + end


class Journal:
    """The answer journal of one run directory. Thread-safe; `lookup` and `spent_usd` see every process."""

    def __init__(self, run_dir: Path, fsync: bool = True):
        self.remote = storage.is_remote(run_dir)
        self.directory = (run_dir if self.remote else Path(run_dir)) / JOURNAL_DIR
        self.fsync = fsync  # survive a machine crash too, not only a killed process
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._own: Path | None = None
        self._offsets: dict[Path, int] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._spent = 0.0
        self._writer = f"{platform.node() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}"
        self._sequence = 0
        self._seen: set[str] = set()  # object names already read (object stores)
        self._loaded = False  # read on first use: a resume of a finished grid never reads its journal

    # -- reading ----------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self.refresh()

    def refresh(self) -> None:
        """Read what every process appended since the last look (this one's own lines included)."""
        self._loaded = True
        if self.remote:
            self._refresh_objects()
            return
        if not self.directory.is_dir():
            return
        with self._lock:
            for path in sorted(self.directory.glob("*.jsonl")):
                offset = self._offsets.get(path, 0)
                if path == self._own or path.stat().st_size == offset:
                    continue  # our own lines are indexed as they are written
                records, self._offsets[path] = read_records(path, offset)
                for record in records:
                    self._index(record)

    def _refresh_objects(self) -> None:
        """List the journal prefix (one request per 1 000 objects) and read the objects not read yet
        (concurrently). The budget does this before every call it lets start, so it sees every worker's spend."""
        own = f"{self._writer}-"
        new = [name for name in storage.names(self.directory)
               if name.endswith(OBJECT_SUFFIX) and not name.startswith(own) and name not in self._seen]
        got = storage.read_many([self.directory / name for name in new])
        with self._lock:
            for i, data in got.items():
                self._seen.add(new[i])
                for line in data.splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        self._index(record)

    def _index(self, record: dict[str, Any]) -> None:
        key = record.get("key")
        if not isinstance(key, str):
            return
        self._records.setdefault(key, record)
        cost = record.get("cost_usd")
        if isinstance(cost, int | float):
            self._spent += float(cost)

    def lookup(self, key: str) -> dict[str, Any] | None:
        self._load()
        with self._lock:
            return self._records.get(key)

    def spent_usd(self, refresh: bool = True) -> float:
        """Estimated spend of every answer any process of the run has journaled."""
        if refresh:
            self.refresh()
        self._load()
        with self._lock:
            return self._spent

    def records(self) -> Iterator[dict[str, Any]]:
        self._load()
        with self._lock:
            yield from list(self._records.values())

    def __len__(self) -> int:
        self._load()
        with self._lock:
            return len(self._records)

    # -- writing ----------------------------------------------------------------------------------
    def append(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        """Write one record (durably, before returning) and index it; returns the stored record."""
        record = {"key": key, **record, "at": datetime.now(UTC).isoformat()}
        # ASCII: every code point survives, a lone surrogate too (as its \\u escape, read back as itself).
        line = (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode("ascii")
        if self.remote:  # one whole object per answer: a reader sees it complete or not at all
            with self._lock:
                self._sequence += 1
                name = f"{self._writer}-{self._sequence:08d}{OBJECT_SUFFIX}"
            storage.write_bytes(self.directory / name, line)
            with self._lock:
                self._index(record)
            return record
        with self._lock:
            fd = self._open()
            view = memoryview(line)
            while view:  # one write(2) in practice; a short write continues where it stopped
                view = view[os.write(fd, view):]
            if self.fsync:
                os.fsync(fd)
            self._index(record)
        return record

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{platform.node() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self._own = self.directory / name
            self._fd = os.open(self._own, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

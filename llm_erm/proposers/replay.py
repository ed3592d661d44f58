"""Replay: answer from recorded responses, exactly, instead of asking a model.

Sources: a run's directory (results/<run_id>/: its answer journal, which holds every answer the run got,
those of interrupted trials included; or, for a run without one, every *.parquet under it that has `text`
and `prompt`/`prompt_sha256` columns), a journal file, or a JSONL file, one object per line with at least `text` and
`prompt` (or `prompt_sha256`), and optionally trial, attempt, usage (nested `usage` object or flat
prompt_tokens/completion_tokens/reasoning_tokens/cached_tokens), response_model/model, cost_usd,
latency_s or duration_ms, tool_uses, tool_results_chars: the original paper's JSONL export reads as is.
Rows without text (failed or skipped calls, summary rows) are not answers and are left out.

Two ways to look a record up:
- ReplayProposer (kind "replay"): by the request, (sha256(prompt), trial, attempt) exactly, falling
  back to (sha256(prompt), attempt) for records that carry no trial. Records without an attempt are
  numbered 1, 2, ... per prompt in the order they appear.
- ReplayAnswers (the replay-server): by the prompt alone; the n-th request for a prompt gets the
  n-th recorded answer of that prompt, in (trial, attempt) order.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.proposers.base import PermanentProposerError, Proposal, ProposeRequest, Usage
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.pricing import cost_usd
from llm_erm.results.journal import JOURNAL_DIR, read_records, sha256_text
from llm_erm.wire.server import Reply, WireError, prompt_of

_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")
_PARQUET_COLUMNS = (
    "prompt", "prompt_sha256", "trial", "attempt", "text", *_USAGE_FIELDS, "response_model", "model",
    "cost_usd", "latency_s", "tool_uses", "tool_results_chars",
)


@dataclass(frozen=True)
class Recorded:
    """One recorded answer."""

    prompt_sha256: str
    trial: int | None
    attempt: int
    text: str
    usage: Usage
    model: str | None
    cost_usd: float | None
    latency_s: float | None
    tool_uses: int = 0
    tool_results_chars: int = 0


# -- loading ------------------------------------------------------------------------------------
def load_records(source: Path) -> list[Recorded]:
    """Every recorded answer in a ledger directory, a Parquet file or a JSONL file, in source order; a run on an
    object store (s3://bucket/results/<run_id>) is read from its journal."""
    from llm_erm.results import storage

    if storage.protocol_of(str(source)) not in ("", "file"):
        from llm_erm.results.journal import Journal

        answers = [r for r in Journal(storage.resolve(str(source))).records() if r.get("kind", "answer") == "answer"]
        rows = [(f"{source} journal record {i + 1}", r) for i, r in enumerate(answers)]
        records = _number_attempts(_record(row, where) for where, row in rows if row.get("text") is not None)
        if not records:
            raise UsageError(f"replay source {source} holds no journaled answers: pass the run's folder in the store")
        return records
    source = Path(source)
    if not source.exists():
        raise UsageError(f"replay source {source} does not exist: pass a results/<run_id> directory or a JSONL file")
    journal = source / JOURNAL_DIR
    if source.is_dir() and journal.is_dir() and any(journal.glob("*.jsonl")):
        rows = [row for path in sorted(journal.glob("*.jsonl")) for row in _journal_rows(path)]
    elif source.is_dir() or source.suffix == ".parquet":
        rows = _parquet_rows(source)
    else:
        rows = _jsonl_rows(source)
    records = _number_attempts(_record(row, where) for where, row in rows if row.get("text") is not None)
    if not records:
        raise UsageError(f"replay source {source} holds no recorded answers (no row with a text): check the path")
    return records


def records_digest(records: list[Recorded]) -> str:
    """The content of a recording: its answers by request, in any order, wherever the files lie."""
    items = sorted((r.prompt_sha256, -1 if r.trial is None else r.trial, r.attempt, r.text) for r in records)
    return hashlib.sha256(json.dumps(items).encode("ascii")).hexdigest()  # ASCII: a lone surrogate too


_DIGESTS: dict[tuple, str] = {}
_DIGESTS_LOCK = threading.Lock()


def source_digest(source: Path | str) -> str:
    """records_digest of a replay source (UsageError when it holds none), cached while its files are unchanged:
    the run id is derived from it several times per run. A run on an object store is read each time."""
    from llm_erm.results import storage

    if storage.protocol_of(str(source)) not in ("", "file"):
        return records_digest(load_records(source))
    source = Path(source)
    files = sorted(source.rglob("*")) if source.is_dir() else [source]
    stamp = (str(source.resolve()), *((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file()))
    with _DIGESTS_LOCK:
        if stamp not in _DIGESTS:
            _DIGESTS[stamp] = records_digest(load_records(source))
        return _DIGESTS[stamp]


def _parquet_rows(source: Path) -> list[tuple[str, dict[str, Any]]]:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    candidates = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
    files, columns = [], set()
    for path in candidates:
        try:
            names = set(pq.read_schema(path).names)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read {path} ({exc.__class__.__name__}): is the ledger complete?") from exc
        # Only attempt tables; the run summary and other tables have no answers in them.
        if "text" in names and names & {"prompt", "prompt_sha256"}:
            files.append(str(path))
            columns |= names
    if not files:
        raise UsageError(f"no Parquet file with recorded answers under {source}: pass a results/<run_id> directory")
    table = ds.dataset(files, format="parquet").to_table(columns=[c for c in _PARQUET_COLUMNS if c in columns])
    return [(f"{source} row {i + 1}", row) for i, row in enumerate(table.to_pylist())]


def _journal_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    records, _ = read_records(path)  # a torn last line (a killed writer) is not an answer
    return [(f"{path} record {i + 1}", r) for i, r in enumerate(records) if r.get("kind", "answer") == "answer"]


def _jsonl_rows(source: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read replay source {source} ({exc.__class__.__name__}): check the path") from exc
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{source} line {number} is not JSON ({exc.msg}): expected one object per line") from None
        if not isinstance(row, dict):
            raise UsageError(f"{source} line {number} is not a JSON object: expected one object per line")
        rows.append((f"{source} line {number}", row))
    return rows


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _record(row: dict[str, Any], where: str) -> dict[str, Any]:
    if row.get("prompt") is not None:
        digest = sha256_text(row["prompt"])
    elif row.get("prompt_sha256"):
        digest = str(row["prompt_sha256"])
    else:
        raise UsageError(f"{where} has a text but neither prompt nor prompt_sha256: replay needs the prompt")
    counts = row.get("usage") if isinstance(row.get("usage"), dict) else row
    usage = Usage(**{name: int(counts.get(name) or 0) for name in _USAGE_FIELDS})
    model = row.get("response_model") or row.get("model")
    # The recorded cost (an unpriced None included); a source without costs is priced from its model.
    cost = row["cost_usd"] if "cost_usd" in row else (cost_usd(model, usage) if model else None)
    if row.get("latency_s") is not None:
        latency = float(row["latency_s"])
    elif row.get("duration_ms") is not None:
        latency = float(row["duration_ms"]) / 1000
    else:
        latency = None
    return {
        "prompt_sha256": digest,
        "trial": _int_or_none(row.get("trial")),
        "attempt": _int_or_none(row.get("attempt")),
        "text": str(row["text"]),
        "usage": usage,
        "model": model,
        "cost_usd": None if cost is None else float(cost),
        "latency_s": latency,
        "tool_uses": int(row.get("tool_uses") or 0),
        "tool_results_chars": int(row.get("tool_results_chars") or 0),
    }


def _number_attempts(fields: Any) -> list[Recorded]:
    seen: dict[tuple[str, int | None], int] = defaultdict(int)
    records = []
    for item in fields:
        group = (item["prompt_sha256"], item["trial"])
        seen[group] += 1
        if item["attempt"] is None:
            item["attempt"] = seen[group]
        records.append(Recorded(**item))
    return records


# -- lookup by request (the replay proposer) ----------------------------------------------------
def from_config(cfg: ProposerConfig) -> ReplayProposer:
    if cfg.replay_from is None:
        raise UsageError("the replay proposer needs a source: pass --replay-from RESULTS_DIR_OR_JSONL")
    return ReplayProposer(cfg.replay_from)


class ReplayProposer:
    """Serves recorded answers keyed by (prompt, trial, attempt); free and instant."""

    kind = "replay"

    def __init__(self, source: Path):
        from llm_erm.results.storage import protocol_of

        remote = protocol_of(str(source)) not in ("", "file")
        self.source = source if remote else Path(source)  # an object-store URL stays a URL
        self._index: dict[tuple[str, int | None, int], Recorded] | None = None
        self._lock = threading.Lock()

    def preflight(self) -> None:
        self._records()

    def identity(self) -> dict[str, Any]:
        # the recording's content, not where it lies: a moved or copied source is the same proposer
        return {"provider": self.kind, "source_sha256": records_digest(list(self._records().values()))}

    def propose(self, request: ProposeRequest) -> Proposal:
        started = time.monotonic()
        try:
            index = self._records()
        except UsageError as exc:
            raise PermanentProposerError(str(exc)) from None
        digest = sha256_text(request.prompt)
        record = index.get((digest, request.trial, request.attempt)) or index.get((digest, None, request.attempt))
        if record is None:
            raise PermanentProposerError(
                f"no recorded answer for trial {request.trial} attempt {request.attempt} "
                f"(prompt sha256 {digest[:12]}) in {self.source}"
            )
        return Proposal(
            text=record.text,
            usage=record.usage,
            latency_s=time.monotonic() - started,
            model=record.model or "replay",
            cost_usd=record.cost_usd,
            tool_uses=record.tool_uses,
            tool_results_chars=record.tool_results_chars,
            extra={"replayed_from": str(self.source), "recorded_latency_s": record.latency_s},
        )

    def _records(self) -> dict[tuple[str, int | None, int], Recorded]:
        with self._lock:
            if self._index is None:
                index: dict[tuple[str, int | None, int], Recorded] = {}
                for record in load_records(self.source):
                    key = (record.prompt_sha256, record.trial, record.attempt)
                    if key in index:
                        trial = "no trial" if record.trial is None else f"trial {record.trial}"
                        raise UsageError(
                            f"{self.source} records two answers for one request (prompt sha256 "
                            f"{key[0][:12]}, {trial}, attempt {record.attempt}): replay one run at a time, "
                            f"or add a trial field"
                        )
                    index[key] = record
                self._index = index
            return self._index


# -- lookup by prompt (the replay-server) -------------------------------------------------------
class ReplayAnswers:
    """An answer callback for WireServer: the n-th request for a prompt gets its n-th recorded answer."""

    def __init__(self, records: list[Recorded], source: str = "the recording"):
        self.source = source
        self._queues: dict[str, list[Recorded]] = defaultdict(list)
        for record in records:
            self._queues[record.prompt_sha256].append(record)
        for queue in self._queues.values():
            queue.sort(key=lambda r: (r.trial if r.trial is not None else 0, r.attempt))
        self._served: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    @property
    def prompts(self) -> int:
        return len(self._queues)

    def __call__(self, endpoint: str, body: dict[str, Any]) -> Reply:
        digest = sha256_text(prompt_of(body))
        with self._lock:
            queue = self._queues.get(digest, [])
            position = self._served[digest]
            if position >= len(queue):
                raise WireError(
                    404,
                    f"no recorded answer for this prompt (sha256 {digest[:12]}): request {position + 1} for it, "
                    f"{len(queue)} recorded in {self.source}",
                    "replay_not_recorded",
                )
            self._served[digest] = position + 1
        record = queue[position]
        return Reply(
            text=record.text,
            prompt_tokens=record.usage.prompt_tokens,
            completion_tokens=record.usage.completion_tokens,
            reasoning_tokens=record.usage.reasoning_tokens,
            cached_tokens=record.usage.cached_tokens,
            model=record.model,
        )

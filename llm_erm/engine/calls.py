"""What names a model call of a run: its sampling seed, its journal key and its journal record.

One builder for every kind of call (an erm attempt, a plain call or a batch line; an icl test prompt), so a
call made by any path is found again by any other: a batch answer is read back by the plain attempt, a
killed icl trial's answers by its resume.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_erm.results.journal import request_key

if TYPE_CHECKING:
    from llm_erm.plan import Work


def attempt_seed(run_id: str, prompt_sha256: str, trial: int, attempt: int) -> int:
    """A sampling seed of its own per attempt: k attempts are k different, reproducible samples."""
    digest = hashlib.sha256(f"{run_id}|{prompt_sha256}|t{trial}|a{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Request:
    """One call of a trial: the key its answer is journaled under, its seed, and the journal record's fields
    (the answer's own fields are added when it arrives)."""

    key: str
    seed: int
    record: dict[str, Any]

    def describe(self) -> dict[str, Any]:
        """The fields that say which call this is (a batch record keeps them, to journal a late answer)."""
        return {k: v for k, v in self.record.items() if k not in ("kind", "run_id", "provider")}


def request(run_id: str, work: Work, provider: dict[str, Any], prompt_sha256: str, attempt: int,
            kind: str = "answer", **fields: Any) -> Request:
    """The call `attempt` of `work`'s trial sending the prompt `prompt_sha256` to `provider`."""
    seed = attempt_seed(run_id, prompt_sha256, work.trial, attempt)
    key = request_key(run_id=run_id, method=work.label, proposer=provider, prompt_sha256=prompt_sha256,
                      trial=work.trial, attempt=attempt)
    return Request(key, seed, {
        "kind": kind, "run_id": run_id, "method": work.label, "target": work.spec.target,
        "length": work.spec.length, "trial": work.trial, "attempt": attempt, "seed": seed, **fields,
        "prompt_sha256": prompt_sha256, "provider": provider})


def submit(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future:
    """Submit with the caller's context variables, so hooks (a Prefect flow run's context) see them."""
    return pool.submit(contextvars.copy_context().run, fn, *args)

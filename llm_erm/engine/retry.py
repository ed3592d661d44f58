"""Retries of a model call: transient errors only, exponential backoff with jitter, Retry-After honoured."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from llm_erm.proposers.base import TransientProposerError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 6  # after the first try
    first_delay_s: float = 1.0  # doubles per retry
    jitter: float = 0.5  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]
    max_retry_after_s: float = 120.0  # a server asking for a longer wait is not waited for: the call fails

    def delay(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float | None:
        """Seconds before retry number `retry` (1-based); None when the call should give up."""
        if retry > self.retries:
            return None
        if retry_after_s is not None and retry_after_s > self.max_retry_after_s:
            return None
        backoff = self.first_delay_s * 2 ** (retry - 1) * rng.uniform(1 - self.jitter, 1 + self.jitter)
        return max(backoff, retry_after_s or 0.0)


class Interrupted(Exception):
    """The run is stopping (Ctrl-C, SIGTERM): no new call starts and no retry waits."""


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    stop: threading.Event,
    on_retry: Callable[[int, float, TransientProposerError], None] | None = None,
    rng: random.Random | None = None,
) -> T:
    """`call()`, retried on TransientProposerError per `policy`; anything else propagates at once.

    Raises the last TransientProposerError when the retries are spent (or Retry-After is too long), and
    Interrupted when `stop` is set while waiting.
    """
    rng = rng or random.Random()
    retry = 0
    while True:
        if stop.is_set():
            raise Interrupted("the run is stopping")
        try:
            return call()
        except TransientProposerError as exc:
            retry += 1
            delay = policy.delay(retry, exc.retry_after_s, rng)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(retry, delay, exc)
            if stop.wait(delay):
                raise Interrupted("the run is stopping") from exc

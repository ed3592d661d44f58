"""Scripted models for grid tests.

ScriptedModel: the n-th successful answer to a prompt is the n-th program of a script. Answers are counted per
prompt and only when they succeed, so a run that asks again for an answer it already paid for shifts every
later answer, and its ledger no longer equals an uninterrupted run's (deterministic with one trial in flight).

SeededModel: the program is chosen by the request's seed (each attempt has its own, see
llm_erm.engine.attempt_seed), so the answer to a request does not depend on the order requests arrive in:
runs with many trials in flight are comparable. It counts sales per seed.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable

from llm_erm.wire.server import Reply, WireError, prompt_of

WRONG = "def f(x):\n    return 0"
FIRST_BIT = "def f(x):\n    return int(x[0])"
PARITY = "def f(x):\n    return x.count('1') % 2"


def reply(program: str) -> Reply:
    return Reply(json.dumps({"code": program}), prompt_tokens=1000, completion_tokens=500, reasoning_tokens=200,
                 cached_tokens=100)


class ScriptedModel:
    def __init__(self, script: list[str], on_request: Callable[[int], bool] | None = None):
        self.script = script
        # called with the number of answers given so far, before answering; True: answer nothing (a 503)
        self.on_request = on_request
        self.answered: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.answered.values())

    def __call__(self, endpoint: str, body: dict) -> Reply:
        if self.on_request is not None and self.on_request(self.total):
            raise WireError(503, "dropped by the test")
        prompt = prompt_of(body)
        with self._lock:
            n = self.answered[prompt]
            self.answered[prompt] += 1
        return reply(self.script[n % len(self.script)])


class SeededModel:
    """Answers by the request's seed; `sales` holds (seed, time the answer was handed over) per answer.

    A request whose client was killed is still answered (and, by a real provider, billed): `received` counts
    it the moment it arrives."""

    def __init__(self, script: list[str], jitter_s: float = 0.0):
        self.script = script
        self.jitter_s = jitter_s  # each answer takes up to this much longer, by its seed: answers spread out
        self.sales: list[tuple[int, float]] = []
        self.received: list[int] = []  # seeds of the requests that reached the model, answered yet or not
        self._lock = threading.Lock()

    def program(self, seed: int) -> str:
        digest = hashlib.sha256(str(seed).encode()).digest()
        return self.script[digest[0] % len(self.script)]

    def __call__(self, endpoint: str, body: dict) -> Reply:
        seed = body["seed"]
        with self._lock:
            self.received.append(seed)
        if self.jitter_s:
            time.sleep(self.jitter_s * hashlib.sha256(f"jitter{seed}".encode()).digest()[0] / 255)
        with self._lock:
            self.sales.append((seed, time.monotonic()))
        return reply(self.program(seed))

    def sold(self) -> Counter[int]:
        with self._lock:
            return Counter(seed for seed, _ in self.sales)

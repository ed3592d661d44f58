"""A scripted model for grid tests: the n-th successful answer to a prompt is the n-th program of a script.

Answers are counted per prompt and only when they succeed, so a run that asks again for an answer it
already paid for shifts every later answer, and its ledger no longer equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable

from llm_erm.proposers.wire_server import Reply, WireError, prompt_of

WRONG = "def f(x):\n    return 0"
FIRST_BIT = "def f(x):\n    return int(x[0])"
PARITY = "def f(x):\n    return x.count('1') % 2"


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
        program = self.script[n % len(self.script)]
        return Reply(json.dumps({"code": program}), prompt_tokens=1000, completion_tokens=500, reasoning_tokens=200,
                     cached_tokens=100)

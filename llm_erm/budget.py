"""A spending cap for a run: once the estimated spend reaches it, no new model call starts."""

from __future__ import annotations

import threading


class Budget:
    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0):
        self.limit_usd = limit_usd
        self._spent = spent_usd
        self._lock = threading.Lock()

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def exhausted(self) -> bool:
        with self._lock:
            return self.limit_usd is not None and self._spent >= self.limit_usd

    def charge(self, cost_usd: float | None) -> None:
        if cost_usd:
            with self._lock:
                self._spent += cost_usd

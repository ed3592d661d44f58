"""How `llm-erm run` stops on Ctrl-C (SIGINT) or SIGTERM: within seconds, one line, no traceback.

The first signal raises KeyboardInterrupt in the main thread, so the engine stops starting calls, the
sandbox closes and Prefect marks the flow run Crashed; everything after it is noise for the user, so logging
goes quiet. Nothing of that may keep the prompt: a watchdog ends the process after `grace_s` whatever is
still waiting (an API that does not answer, a thread in a model call). A second Ctrl-C ends it at once.
Every finished trial is in the ledger and every answer in the journal already, so exiting loses nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

GRACE_S = 2.0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every `except KeyboardInterrupt` cleanup runs for it too."""


class Stopper:
    """Installs the SIGINT/SIGTERM handlers for a run; `finish` prints the one line and exits."""

    def __init__(self, message: Callable[[], None], grace_s: float = GRACE_S):
        self.message = message  # prints the `interrupted: ...` line (and where the results are)
        self.grace_s = grace_s
        self.cleanups: list[Callable[[], None]] = []  # e.g. kill our temporary Prefect server
        self.code: int | None = None
        self._lock = threading.Lock()
        self._previous: dict[int, object] = {}

    def install(self) -> Stopper:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.code is not None:  # a second Ctrl-C: no more waiting
            self.finish()
        self.code = 143 if signum == signal.SIGTERM else 130
        logging.disable(logging.CRITICAL)  # Prefect's and the engine's reports of the stop are not news
        threading.Thread(target=self._watchdog, daemon=True, name="stop-watchdog").start()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def _watchdog(self) -> None:
        threading.Event().wait(self.grace_s)
        self.finish()

    def finish(self, code: int | None = None) -> None:
        """Run the cleanups, print the message once and exit now (threads in model calls are not waited for)."""
        with self._lock:  # the main thread and the watchdog may both get here: the first one exits
            for cleanup in self.cleanups:
                with contextlib.suppress(Exception):  # exiting anyway: a cleanup that fails must not stop that
                    cleanup()
            try:
                self.message()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if code is not None else (self.code or 130))

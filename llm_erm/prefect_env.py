"""Prefect for this project: settings applied before Prefect is imported, and which API a CLI run talks to.

Telemetry off (no network but the package indexes here), a project-local PREFECT_HOME so runs land in
./.prefect and the UI started from the checkout shows them, INFO logs to the API (the UI shows what a run
did) but only warnings on the console (the CLI draws its own progress), and a start-up timeout that
survives two busy cores. Values already in the environment win.

`connect()` picks the API for `llm-erm run`: PREFECT_API_URL when set; else a Prefect server already
running on 127.0.0.1:4200 (`prefect server start`, as the README says), which costs nothing to start; else a
temporary server of our own, started as a child that dies with us (also on SIGKILL: Prefect's own temporary
server is orphaned then), on the same project-local database, so the runs stay visible in the UI later.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from llm_erm.errors import UsageError

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
}
LOCAL_SERVER = "http://127.0.0.1:4200/api"
STARTUP_TIMEOUT_S = 120.0
PR_SET_PDEATHSIG = 1


def configure(home: Path | None = None) -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str((home or Path.cwd() / ".prefect").resolve()))


def healthy(api_url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout_s) as response:
            return response.read().strip() == b"true"
    except (OSError, ValueError):
        return False


class Connection:
    """The API a run uses; `started` when it is our own temporary server (stopped by `close`)."""

    def __init__(self, api_url: str, how: str, process: subprocess.Popen | None = None):
        self.api_url, self.how, self.process = api_url, how, process

    def wait(self) -> None:
        """Block until a server we started answers (it boots while the run prepares)."""
        if self.process is None:
            return
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not healthy(self.api_url, 1.0):
            if self.process.poll() is not None:
                raise UsageError(f"the temporary Prefect server exited with code {self.process.returncode}: "
                                 "start one yourself with `prefect server start` and re-run")
            if time.monotonic() > deadline:
                raise UsageError(f"the temporary Prefect server did not answer within {STARTUP_TIMEOUT_S:.0f} s: "
                                 "start one yourself with `prefect server start` and re-run")
            time.sleep(0.1)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            drain_prefect()  # logs and events still queued for our server, before it goes
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def connect() -> Iterator[Connection]:
    """Point this process (PREFECT_API_URL) at a Prefect API; call before importing Prefect."""
    configure()
    given = os.environ.get("PREFECT_API_URL")
    if given:
        if not healthy(given, 3.0):
            raise UsageError(f"the Prefect API at PREFECT_API_URL={given} does not answer: start the server "
                             "(`prefect server start`) or unset PREFECT_API_URL")
        connection = Connection(given, f"the Prefect server at {given}")
    elif healthy(LOCAL_SERVER, 0.3):
        os.environ["PREFECT_API_URL"] = LOCAL_SERVER
        connection = Connection(LOCAL_SERVER, f"the Prefect server at {LOCAL_SERVER}")
    else:
        connection = _start_temporary_server()
        os.environ["PREFECT_API_URL"] = connection.api_url
    try:
        yield connection
    finally:
        connection.close()


def drain_prefect(timeout_s: float = 10.0) -> None:
    """Send the logs and events Prefect still holds to the API (they would otherwise block the exit)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=timeout_s)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _start_temporary_server() -> Connection:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "error", "--lifespan", "on"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    return Connection(f"http://127.0.0.1:{port}/api", "a temporary Prefect server (start one with "
                      "`prefect server start` to keep the UI and skip this start-up)", process)

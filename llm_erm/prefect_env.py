"""Prefect for this project: settings applied before Prefect is imported, and which API a CLI run talks to.

Telemetry off (no network but the package indexes here), a project-local PREFECT_HOME so runs land in
./.prefect and the UI started from the checkout shows them, INFO logs to the API (the UI shows what a run
did) but only warnings on the console (the CLI draws its own progress), and a start-up timeout that
survives two busy cores. Values already in the environment win.

`connect()` picks the API for `llm-erm run`: the server the user configured (PREFECT_API_URL, else the
API URL of prefect.toml, pyproject.toml's [tool.prefect] or the active Prefect profile, in Prefect's own
order), else a temporary server of this run's alone, started as a child that dies with us (also on SIGKILL:
Prefect's own temporary server is orphaned then), on the same project-local database, so the runs stay
visible in the UI later. A server merely found listening on a port is never adopted: it may be another
user's or another checkout's, and its `prefect server stop` would cut our run off.
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
import tomllib
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
STARTUP_TIMEOUT_S = 120.0
TEMPORARY_API_ENV = "LLM_ERM_TEMPORARY_PREFECT_API"  # set to our temporary server's URL while it runs
PR_SET_PDEATHSIG = 1


def configure(home: Path | None = None) -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str((home or Path.cwd() / ".prefect").resolve()))
    # the temporary server exits (code 3) when its database's directory does not exist yet
    with contextlib.suppress(OSError):
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)


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

    def close(self, drain_s: float = 10.0, stop_s: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            drain_prefect(drain_s)  # logs and events still queued for our server, before it goes
            self.kill(stop_s)

    def kill(self, stop_s: float = 0.0) -> None:
        """Stop our temporary server (if any): SIGTERM, then SIGKILL after stop_s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=stop_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def configured_api_url() -> tuple[str, str] | None:
    """(the API URL the user configured for Prefect, where it came from), or None; read before `configure`
    points PREFECT_HOME at the project, without importing Prefect (a second of start-up).

    Prefect's order: the environment, ./prefect.toml, ./pyproject.toml's [tool.prefect], the active profile
    (PREFECT_PROFILE, else the profiles file's `active`) of PREFECT_PROFILES_PATH, else the user's
    PREFECT_HOME (~/.prefect) profiles.toml."""
    given = os.environ.get("PREFECT_API_URL")
    if given:
        return given, "PREFECT_API_URL"
    for path, table in ((Path("prefect.toml"), ()), (Path("pyproject.toml"), ("tool", "prefect"))):
        url = _toml_get(path, (*table, "api", "url"))
        if isinstance(url, str) and url:
            return url, f"[{'.'.join((*table, 'api'))}] url in {path.resolve()}"
    profiles_path = Path(os.environ.get("PREFECT_PROFILES_PATH")
                         or Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect") / "profiles.toml")
    profiles = _toml_read(profiles_path)
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active")
    url = (profiles.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL") if active else None
    if isinstance(url, str) and url:
        return url, f"Prefect profile {active!r} ({profiles_path})"
    return None


def _toml_read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, ValueError):  # absent or unreadable: Prefect ignores it too
        return {}


def _toml_get(path: Path, keys: tuple[str, ...]):
    value: object = _toml_read(path)
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def planned() -> str:
    """What `connect` will use, as the run's first line says it (nothing is started)."""
    found = configured_api_url()
    if found is not None:
        return f"prefect: the server at {found[0]} (from {found[1]})"
    return ("prefect: a temporary server for this run only (no server configured: set PREFECT_API_URL, e.g. to "
            "a `prefect server start`, to keep the UI and skip this start-up)")


@contextlib.contextmanager
def connect() -> Iterator[Connection]:
    """Point this process (PREFECT_API_URL) at a Prefect API; call before importing Prefect."""
    found = configured_api_url()
    if found is not None and not healthy(found[0], 3.0):
        raise UsageError(f"the Prefect API at {found[0]} (from {found[1]}) does not answer: start that server "
                         "(`prefect server start`) or configure another one")
    configure()
    if found is not None:
        url = found[0]
        os.environ["PREFECT_API_URL"] = url
        connection = Connection(url, f"the Prefect server at {url}")
    else:
        connection = _start_temporary_server()
        os.environ["PREFECT_API_URL"] = connection.api_url
        os.environ[TEMPORARY_API_ENV] = connection.api_url  # the manifest links no UI that will be gone
    try:
        yield connection
    except BaseException:  # an interrupt or a crash: hand back the prompt, do not wait on the API
        connection.close(drain_s=1.0, stop_s=1.0)
        raise
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
        # Its own session: a terminal's Ctrl-C goes to the whole foreground process group, and a server that
        # died with it would leave the flow engine retrying a dead API for minutes. It still dies with us.
        start_new_session=True,
    )
    return Connection(f"http://127.0.0.1:{port}/api", "a temporary Prefect server (start one with "
                      "`prefect server start` to keep the UI and skip this start-up)", process)

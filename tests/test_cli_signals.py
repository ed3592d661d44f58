"""Killing `llm-erm run` (SIGKILL, SIGTERM, SIGINT) leaves no process behind and a ledger that resumes.

The CLI runs on Prefect here as a new user's does: no server configured, so it starts a temporary one of its
own (a child that must die with it, even on SIGKILL), on a project-local database the resume finds again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from scripted import WRONG, SeededModel  # noqa: E402
from waiting import scaled, wait_until  # noqa: E402

from llm_erm.results import ledger  # noqa: E402
from llm_erm.wire.server import WireServer  # noqa: E402

LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One project directory for the module: the Prefect database is migrated once."""
    return tmp_path_factory.mktemp("project")


def descendants(pid: int) -> set[int]:
    """Every process below pid (children, grandchildren ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def start_run(home: Path, server: WireServer, run_id: str, **env) -> subprocess.Popen:
    args = [LLM_ERM, "run", "--functions", "fn_a", "fn_e", "--lengths", "20", "--attempts", "4", "--trials", "3",
            "--test-size", "400", "--proposer", "openai-chat", "--base-url", server.url, "--concurrency", "2",
            "--run-id", run_id, "--no-analyze", "--retry-delay", "0.01"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    environ.update(PREFECT_HOME=str(home / ".prefect"), OPENAI_API_KEY="sk-test", **env)
    return subprocess.Popen(args, cwd=home, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_answers(model: SeededModel, proc: subprocess.Popen, n: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while len(model.sales) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no answers"
        time.sleep(0.01)


def flow_run_states(home: Path, name: str) -> list[str]:
    with sqlite3.connect(home / ".prefect" / "prefect.db") as db:
        return [row[0] for row in db.execute("SELECT state_type FROM flow_run WHERE name = ?", (name,))]


def test_sigkill_leaves_no_process_and_the_resume_marks_the_killed_flow_run_crashed(home):
    model = SeededModel([WRONG], jitter_s=0.2)
    with WireServer(model) as server:
        proc = start_run(home, server, "killed")
        wait_for_answers(model, proc, 3)
        below = descendants(proc.pid)
        assert below, "the run has a temporary Prefect server and sandbox workers"
        proc.kill()
        proc.wait()
        wait_until(lambda: not alive(below), "every process below the killed run to exit", timeout_s=10)
        assert flow_run_states(home, "killed") == ["RUNNING"]  # nobody could say otherwise yet

        resumed = start_run(home, server, "killed")
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
    states = sorted(flow_run_states(home, "killed"))
    assert states == ["COMPLETED", "CRASHED"], states
    assert len(ledger.finished_trials(home / "results" / "killed")) == 6


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_stop_the_run_within_seconds_with_a_consistent_ledger(home, signum):
    model = SeededModel([WRONG], jitter_s=0.3)
    run_id = f"stopped-{signum}"
    with WireServer(model) as server:
        proc = start_run(home, server, run_id)
        wait_for_answers(model, proc, 3)
        below = descendants(proc.pid)
        bound = scaled(8)  # seconds on an idle machine, stretched by the load (sampled before and after)
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=scaled(60))
        took = time.monotonic() - sent
        bound = max(bound, scaled(8))
        assert took < bound, f"took {took:.1f} s to stop (allowed {bound:.1f} s at this load)"
        assert proc.returncode == (143 if signum == signal.SIGTERM else 130), err
        assert "re-run the same command to resume" in err.lower(), err
        wait_until(lambda: not alive(below), "every process below the stopped run to exit", timeout_s=10)
        run_dir = home / "results" / run_id
        assert not list(run_dir.rglob("*.tmp"))  # no half-written file
        ledger.read_attempts(run_dir)  # every trial file that exists is whole
        resumed = start_run(home, server, run_id)
        out, err = resumed.communicate(timeout=300)
        assert resumed.returncode == 0, err
    assert len(ledger.finished_trials(home / "results" / run_id)) == 6
    # 2 cells x 3 trials x 4 attempts: each bought once, but for the (at most 2) calls abandoned in flight
    assert 24 <= len(model.sales) <= 24 + 2 and len(model.sold()) == 24
    assert json.loads((home / "results" / run_id / "manifest.json").read_text())["run_id"] == run_id


# ---- Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group ----------------------

class Terminal:
    """`llm-erm` run in a pseudo-terminal of its own (a new session, the pty its controlling terminal), as in a
    shell: writing ^C to the master makes the line discipline signal the whole foreground process group."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path):
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once (nothing of pytest may run here)
            os.chdir(cwd)
            os.execve(args[0], args, env)
        self.chunks: list[bytes] = []
        self.code: int | None = None
        self._reader = __import__("threading").Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:  # EIO: the child side is closed
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def output(self) -> str:
        """What the terminal showed, without its control sequences (colours, cursor moves, line clears)."""
        text = b"".join(self.chunks).decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", text).replace("\r", "\n")

    def ctrl_c(self) -> None:
        os.write(self.fd, b"\x03")

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                self._reader.join(5)
                os.close(self.fd)
                return self.code
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"still running {timeout:.0f} s after Ctrl-C:\n{self.output[-3000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def user_server(tmp_path_factory):
    """A persistent `prefect server start` of the user's own (on a free port, never 4200)."""
    from llm_erm.prefect_env import healthy

    home = tmp_path_factory.mktemp("user-server")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("prefect")), "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 180
    while not healthy(url, 1.0):
        assert server.poll() is None and time.monotonic() < deadline, "the user's server did not start"
        time.sleep(0.2)
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


def stop_deadline_s() -> float:
    """Generous, and wider on a loaded machine: the bug this guards against took 78-212 s."""
    return 20.0 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


@pytest.mark.parametrize("path", ["temporary-server", "user-server", "no-prefect"])
def test_ctrl_c_in_a_terminal_stops_the_run_cleanly_on_every_path(home, path, request):
    model = SeededModel([WRONG], jitter_s=0.3)
    run_id = f"ctrl-c-{path}"
    with WireServer(model) as server:
        args = [LLM_ERM, "run", "--functions", "fn_a", "fn_e", "--lengths", "20", "--attempts", "4", "--trials",
                "3", "--test-size", "400", "--proposer", "openai-chat", "--base-url", server.url, "--concurrency",
                "2", "--run-id", run_id, "--no-analyze", "--retry-delay", "0.01"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env.update(PREFECT_HOME=str(home / ".prefect"), OPENAI_API_KEY="sk-test", TERM="xterm")
        if path == "no-prefect":
            args.append("--no-prefect")
        if path == "user-server":
            env["PREFECT_API_URL"] = request.getfixturevalue("user_server")
        terminal = Terminal(args, env, home)
        deadline = time.monotonic() + 240
        while len(model.sales) < 3:  # mid-run: trials in flight, answers arriving
            assert terminal.code is None and os.waitpid(terminal.pid, os.WNOHANG)[0] == 0, terminal.output
            assert time.monotonic() < deadline, f"no answers:\n{terminal.output[-3000:]}"
            time.sleep(0.01)
        below = descendants(terminal.pid)
        session = os.getsid(terminal.pid)
        sent = time.monotonic()
        terminal.ctrl_c()
        code = terminal.wait(timeout=stop_deadline_s())
        took = time.monotonic() - sent
    print(f"{path}: stopped {took:.2f} s after Ctrl-C (load {os.getloadavg()[0]:.1f})")
    request.node.user_properties.append(("stop_s", round(took, 2)))
    out = terminal.output
    assert code == 130, out[-3000:]
    assert sum(line.startswith("interrupted:") for line in out.splitlines()) == 1, out[-3000:]
    assert "Traceback" not in out and "ERROR" not in out and "Error logging to API" not in out, out[-3000:]
    manifest = json.loads((home / "results" / run_id / "manifest.json").read_text())
    if path == "temporary-server":
        assert "prefect: a temporary server for this run only" in out
        # no link to a UI that is gone with the run
        assert manifest["prefect"]["ui_url"] is None and manifest["prefect"]["temporary_server"] is True
    if path == "user-server":
        assert f"prefect: the server at {env['PREFECT_API_URL']}" in out
        assert manifest["prefect"]["ui_url"] == env["PREFECT_API_URL"].removesuffix("/api")
        from llm_erm.prefect_env import healthy

        assert healthy(env["PREFECT_API_URL"], 5.0), "the user's server must outlive the run"
    end = time.monotonic() + 10  # SIGKILLed children are reaped by init a moment later
    while alive(below) and time.monotonic() < end:
        time.sleep(0.1)
    assert not alive(below), f"left behind: {alive(below)}"
    in_session = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _sid(int(p.name)) == session}
    assert not alive(in_session), f"left in the run's session: {alive(in_session)}"
    assert not list((home / "results" / run_id).rglob("*.tmp"))


def _sid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])
    except (OSError, IndexError, ValueError):
        return None

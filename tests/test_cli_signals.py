"""Killing `llm-erm run` (SIGKILL, SIGTERM, SIGINT) leaves no process behind and a ledger that resumes.

The CLI runs on Prefect here as a new user's does: no server configured, so it starts a temporary one of its
own (a child that must die with it, even on SIGKILL), on a project-local database the resume finds again.
"""

from __future__ import annotations

import json
import os
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

from llm_erm.proposers.wire_server import WireServer  # noqa: E402
from llm_erm.results import ledger  # noqa: E402

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

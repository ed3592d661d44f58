"""The documented deployment path, end to end, as the README's multi-machine recipe runs it: a Prefect server
backed by PostgreSQL, a process work pool, `prefect deploy`, two workers, and `prefect deployment run
erm-grid/erm-grid` — once plainly and once fanned out per cell, under one run id, one budget and one cap on
model calls across both workers."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from postgres import Postgres
from scripted import FIRST_BIT, PARITY, WRONG, ScriptedModel
from waiting import scaled

from llm_erm.results import ledger
from llm_erm.wire.server import WireServer

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = pytest.mark.slow


# ScriptedModel's usage priced at gpt-5: 900 uncached + 100 cached input tokens, 500 output tokens
CALL_USD = (900 * 1.25 + 100 * 0.125 + 500 * 10.0) / 1e6


class InFlight:
    """Wraps a model: answers after `latency_s` and records the most calls it ever had in flight at once."""

    def __init__(self, model, latency_s: float):
        self.model, self.latency_s = model, latency_s
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, endpoint, body):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(self.latency_s)
            return self.model(endpoint, body)
        finally:
            with self._lock:
                self.now -= 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    database = Postgres()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OPENAI_API_KEY": "sk-test-deploy",
           "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_SERVER_DATABASE_CONNECTION_URL": database.url}
    log = open(home / "server.log", "w")  # noqa: SIM115 - the server writes to it until teardown
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + scaled(120)
    while True:
        try:
            if urllib.request.urlopen(f"{api}/health", timeout=2).read() == b"true":
                break
        except OSError:
            pass
        assert server.poll() is None and time.time() < deadline, (home / "server.log").read_text()[-3000:]
        time.sleep(0.5)
    prefect(env, "work-pool", "create", "erm-pool", "--type", "process")
    prefect(env, "--no-prompt", "deploy", "--all")
    yield env
    server.terminate()
    server.wait(timeout=scaled(30))
    log.close()
    database.stop()


def run_logs(env, run_name: str) -> list[str]:
    """The log lines the API holds for the flow run of this name (what the UI's Logs tab shows)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name])))
        deadline = time.time() + scaled(30)
        while True:  # logs are shipped in batches
            lines = [log.message for log in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))]
            if any("a1:" in line for line in lines) or time.time() > deadline:
                return lines
            time.sleep(1)


def prefect(env, *args, timeout=300) -> str:
    done = subprocess.run([PREFECT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_deployments_run_on_workers_and_fan_out_shares_cells_between_two(local_server, tmp_path):
    env = local_server
    logs = [tmp_path / f"w{i}.log" for i in (1, 2)]
    workers = [
        subprocess.Popen([PREFECT, "worker", "start", "--pool", "erm-pool", "--name", f"w{i}", "--limit", "2"],
                         env=env, cwd=tmp_path, stdout=log.open("w"), stderr=subprocess.STDOUT)  # noqa: SIM115
        for i, log in zip((1, 2), logs, strict=True)
    ]
    model = InFlight(ScriptedModel([WRONG, FIRST_BIT, PARITY]), latency_s=0.3)
    try:
        with WireServer(model) as server:
            common = {"proposer": {"kind": "openai-chat", "base_url": server.url}, "attempts": 3, "test_size": 400,
                      "retry_delay_s": 0.01, "analyze": False, "results_dir": str(tmp_path / "results"),
                      "datasets_dir": str(tmp_path / "datasets")}
            # 1. a plain deployment run, parameters given the documented ways
            out = prefect(env, "deployment", "run", "erm-grid/erm-grid", "--param", "run_id=plain",
                          "--params", json.dumps({**common, "functions": ["fn_a"], "lengths": [20]}),
                          "--watch", "--watch-timeout", str(round(scaled(240))))
            assert "Completed" in out
            assert ledger.finished_trials(tmp_path / "results" / "plain") == {("erm", "fn_a", 20, 1)}
            assert any("fn_a L20 t1 a1: ok" in line for line in run_logs(env, "plain"))  # INFO logs reach the UI
            plain_answers = model.model.total
            model.peak = 0

            # 2. fanned out: one erm-cell flow run per cell, shared by both workers, under the parent's derived
            # run id (none given), one budget (room for 6 calls of the 12 the grid would make) and a cap of one
            # model call in flight across both workers (a Prefect global concurrency limit)
            cells = [("fn_a", 20), ("fn_a", 30), ("fn_e", 20), ("fn_e", 30)]
            out = prefect(env, "deployment", "run", "erm-grid/erm-grid",
                          "--params", json.dumps({**common, "functions": ["fn_a", "fn_e"], "lengths": [20, 30],
                                                  "fan_out": True, "budget_usd": 5.5 * CALL_USD, "call_limit": 1}),
                          "--watch", "--watch-timeout", str(round(scaled(280))))
            assert "Completed" in out
            fanned_answers = model.model.total - plain_answers
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=scaled(30))

    (run_dir,) = [p for p in (tmp_path / "results").iterdir() if p.name != "plain"]  # one run for all cells
    attempts = ledger.read_attempts(run_dir).to_pylist()
    assert {(r["target"], r["length"]) for r in attempts} == set(cells)
    assert {r["run_id"] for r in attempts} == {run_dir.name}
    # the budget held across both workers: 6 calls fit; the rest of every cell was skipped, not bought
    assert fanned_answers == 6 == sum(r["status"] != "skipped_budget" for r in attempts)
    assert model.peak == 1  # never two model calls at once, whichever worker made them
    assert (run_dir / "summary.parquet").exists()
    assert {(c["target"], c["length"]) for c in ledger.read_manifest(run_dir)["cells"]} == set(cells)
    # A worker may try a run another one took (the server aborts it); what counts is what each ran.
    name = re.escape(run_dir.name)
    ran = [re.findall(rf"Flow run '({name} [^']+)' submitted to infrastructure", log.read_text()) for log in logs]
    assert sorted(c for cells_of in ran for c in cells_of) == sorted(f"{run_dir.name} {t} L{length}"
                                                                    for t, length in cells)
    assert all(ran), f"both workers ran cells: {ran}"


def test_nightly_deployment_is_created_paused_with_a_small_budgeted_grid_and_the_readme_turns_it_on(local_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    readme = (Path(__file__).parent.parent.parent / "README.md").read_text()
    assert "prefect deployment schedule resume erm-nightly/erm-nightly <SCHEDULE_ID>" in readme
    with temporary_settings({PREFECT_API_URL: local_server["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("erm-nightly/erm-nightly")
        assert [(s.schedule.cron, s.active) for s in deployment.schedules] == [("0 3 * * *", False)]
        grid = deployment.parameters["grid"]
        assert grid["budget_usd"] == 5 and grid["functions"] == ["fn_a", "fn_c", "fn_e"]
        time.sleep(5)  # the scheduler runs every few seconds: a paused schedule creates nothing
        assert not client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["erm-nightly"])))
        (schedule,) = deployment.schedules
        prefect(local_server, "deployment", "schedule", "resume", "erm-nightly/erm-nightly", str(schedule.id))
        deadline = time.time() + scaled(90)
        while True:  # the scheduler service creates the upcoming runs (broken with SQLAlchemy 2.1)
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["erm-nightly"])),
                flow_run_filter=FlowRunFilter(),
            )
            if runs or time.time() > deadline:
                break
            time.sleep(2)
    assert runs and all(r.state.is_scheduled() for r in runs)
    assert all(r.expected_start_time.hour == 3 and r.expected_start_time.minute == 0 for r in runs)

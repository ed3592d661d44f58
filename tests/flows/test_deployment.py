"""The documented deployment path, end to end: a local Prefect server, a process work pool, `prefect deploy`,
two workers, and `prefect deployment run erm-grid/erm-grid` — once plainly and once fanned out per cell."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from scripted import FIRST_BIT, PARITY, WRONG, ScriptedModel

from llm_erm.proposers.wire_server import WireServer
from llm_erm.results import ledger

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OPENAI_API_KEY": "sk-test-deploy",
           "PREFECT_LOGGING_LEVEL": "INFO"}
    log = open(home / "server.log", "w")  # noqa: SIM115 - the server writes to it until teardown
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
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
    server.wait(timeout=30)
    log.close()


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
    model = ScriptedModel([WRONG, FIRST_BIT, PARITY])
    try:
        with WireServer(model) as server:
            common = {"proposer": {"kind": "openai-chat", "base_url": server.url}, "attempts": 3, "test_size": 400,
                      "retry_delay_s": 0.01, "analyze": False, "results_dir": str(tmp_path / "results"),
                      "datasets_dir": str(tmp_path / "datasets")}
            # 1. a plain deployment run, parameters given the documented ways
            out = prefect(env, "deployment", "run", "erm-grid/erm-grid", "--param", "run_id=plain",
                          "--params", json.dumps({**common, "functions": ["fn_a"], "lengths": [20]}),
                          "--watch", "--watch-timeout", "240")
            assert "Completed" in out
            assert ledger.finished_trials(tmp_path / "results" / "plain") == {("erm", "fn_a", 20, 1)}
            plain_answers = model.total

            # 2. fanned out: one erm-cell flow run per cell, shared by both workers
            cells = [("fn_a", 20), ("fn_a", 30), ("fn_e", 20), ("fn_e", 30)]
            out = prefect(env, "deployment", "run", "erm-grid/erm-grid",
                          "--params", json.dumps({**common, "functions": ["fn_a", "fn_e"], "lengths": [20, 30],
                                                  "run_id": "fanned", "fan_out": True}),
                          "--watch", "--watch-timeout", "280")
            assert "Completed" in out
            fanned_answers = model.total - plain_answers
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)

    run_dir = tmp_path / "results" / "fanned"
    assert ledger.finished_trials(run_dir) == {("erm", t, length, 1) for t, length in cells}
    attempts = ledger.read_attempts(run_dir).to_pylist()
    assert fanned_answers == len(attempts)  # no cell proposed twice
    assert (run_dir / "summary.parquet").exists()
    assert {(c["target"], c["length"]) for c in ledger.read_manifest(run_dir)["cells"]} == set(cells)
    # A worker may try a run another one took (the server aborts it); what counts is what each ran.
    ran = [re.findall(r"Flow run '(fanned [^']+)' submitted to infrastructure", log.read_text()) for log in logs]
    assert sorted(c for cells_of in ran for c in cells_of) == sorted(f"fanned {t} L{length}" for t, length in cells)
    assert all(ran), f"both workers ran cells: {ran}"


def test_nightly_deployment_is_scheduled(local_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilter
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: local_server["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("erm-nightly/erm-nightly")
        assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
        deadline = time.time() + 90
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

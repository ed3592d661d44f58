"""Beyond one machine: workers that share nothing but the Prefect API and an object store.

A Prefect server on PostgreSQL, a loopback S3 API (moto), two process workers on two work pools (`cpu`, `gpu`),
each with its own working directory and HOME (so its own datasets under ~ and its own Prefect home), and a
submitter in a third directory without the store's credentials. A fanned-out grid of two methods routes erm to
the cpu pool and decision-tree to the gpu pool: one run id, one journal, one budget, on s3://.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from postgres import Postgres
from scripted import FIRST_BIT, PARITY, WRONG, SeededModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from s3 import BUCKET, MotoServer  # noqa: E402
from test_deployment import free_port, prefect  # noqa: E402

from llm_erm.results import ledger, storage  # noqa: E402
from llm_erm.wire.server import WireServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))
COMPARED = ["method_label", "target", "length", "trial", "attempt", "seed", "text", "code", "status", "val_acc",
            "test_acc", "selected", "stopped_early"]
SCRIPT = [WRONG, FIRST_BIT, PARITY]

pytestmark = pytest.mark.slow


def rows(run_dir) -> list[dict]:
    return sorted(({k: r[k] for k in COMPARED} for r in ledger.read_attempts(run_dir).to_pylist()),
                  key=lambda r: (r["method_label"], r["target"], r["length"], r["trial"], r["attempt"]))


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The server on PostgreSQL, the S3 API, the two pools and the deployments (parent, one cell per pool)."""
    home = tmp_path_factory.mktemp("server-home")
    database = Postgres()
    s3 = MotoServer().__enter__()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_"))}
    env = {**base, "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "INFO", "PREFECT_SERVER_DATABASE_CONNECTION_URL": database.url,
           "PREFECT_WORKER_QUERY_SECONDS": "1"}
    log = open(home / "server.log", "w")  # noqa: SIM115 - the server writes to it until teardown
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            try:
                if urllib.request.urlopen(f"{api}/health", timeout=2).read() == b"true":
                    break
            except OSError:
                pass
            assert server.poll() is None and time.time() < deadline, (home / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        for pool in ("cpu", "gpu"):
            prefect(env, "work-pool", "create", pool, "--type", "process")
        for entrypoint, name, pool in (("erm_grid", "erm-grid-s3", "cpu"), ("erm_cell", "erm-cell-cpu", "cpu"),
                                       ("erm_cell", "erm-cell-gpu", "gpu")):
            prefect(env, "--no-prompt", "deploy", f"llm_erm/flows/grid.py:{entrypoint}", "--name", name,
                    "--pool", pool)
        yield env, s3
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
        s3.__exit__(None, None, None)
        database.stop()


def worker(env: dict, s3: MotoServer, place: Path, pool: str, limit: int = 4) -> tuple[subprocess.Popen, Path]:
    """A process worker in its own directory with its own HOME (datasets under ~, its own Prefect home)."""
    home = place / "home"
    home.mkdir(parents=True)
    wenv = {**env, **s3.env, "HOME": str(home), "PREFECT_HOME": str(home / ".prefect"), "OPENAI_API_KEY": "sk-w"}
    log = place / "worker.log"
    proc = subprocess.Popen([PREFECT, "worker", "start", "--pool", pool, "--name", f"{pool}-{place.name}",
                             "--limit", str(limit)],
                            env=wenv, cwd=place, stdout=log.open("w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    return proc, log


def test_a_routed_fanned_out_grid_on_s3_runs_each_method_on_its_pool_and_equals_a_local_run(stack, tmp_path,
                                                                                            monkeypatch):
    env, s3 = stack
    (tmp_path / "cpu").mkdir()
    (tmp_path / "gpu").mkdir()
    submitter = tmp_path / "submitter"
    submitter.mkdir()
    workers = {pool: worker(env, s3, tmp_path / pool, pool) for pool in ("cpu", "gpu")}
    model = SeededModel(SCRIPT, jitter_s=0.05)
    cells = [("fn_a", 20), ("fn_c", 20), ("fn_e", 20)]
    try:
        with WireServer(model) as server:
            grid = {"functions": ["fn_a", "fn_c", "fn_e"], "lengths": [20], "attempts": 3, "trials": 2,
                    "test_size": 400, "methods": [{"method": "erm"}, {"method": "decision-tree"}], "run_id": "routed",
                    "proposer": {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 20},
                    "retry_delay_s": 0.01, "analyze": False, "results_dir": f"s3://{BUCKET}/shared",
                    "datasets_dir": "~/llm-erm-datasets", "fan_out": True, "call_limit": 4,
                    "method_deployments": {"erm": "erm-cell-cpu", "decision-tree": "erm-cell-gpu"}}
            senv = {**env, "HOME": str(submitter / "home")}  # the submitter holds no store credentials
            done = subprocess.run([PREFECT, "deployment", "run", "erm-grid/erm-grid-s3", "--params", json.dumps(grid),
                                   "--watch", "--watch-timeout", "500"], env=senv, cwd=submitter,
                                  capture_output=True, text=True, timeout=560)
            assert done.returncode == 0 and "Completed" in done.stdout, done.stdout[-3000:] + done.stderr[-2000:]
        sold = model.sold()
    finally:
        for proc, _ in workers.values():
            proc.terminate()
        for proc, _ in workers.values():
            proc.wait(timeout=60)
    assert sold and max(sold.values()) == 1, "an answer was bought twice"

    # each method ran on its pool's worker: the flow runs say which pool, the worker logs which worker
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["erm-cell"])))
    pools = {run.name: run.work_pool_name for run in runs if run.name.startswith("routed ")}
    assert pools == {**{f"routed {t} L{n} [erm]": "cpu" for t, n in cells},
                     **{f"routed {t} L{n} [decision-tree]": "gpu" for t, n in cells}}, pools
    for pool, (_, log) in workers.items():
        ran = set(re.findall(r"Flow run '(routed [^']+)' submitted to infrastructure", log.read_text()))
        assert ran == {name for name, p in pools.items() if p == pool}, (pool, ran)
        # this worker built its own datasets under its own HOME, nothing under the other's or the submitter's
        assert list((tmp_path / pool / "home" / "llm-erm-datasets").rglob("meta.json"))
        assert s3.env["AWS_SECRET_ACCESS_KEY"] not in log.read_text()
    assert not (submitter / "home" / "llm-erm-datasets").exists()

    # the ledger on s3:// equals a local run's (same rows, same selection)
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    reference = SeededModel(SCRIPT)
    from llm_erm import GridConfig, run_grid

    with WireServer(reference) as server:
        local = {k: v for k, v in grid.items() if k not in ("fan_out", "call_limit", "method_deployments")}
        local.update(proposer={**grid["proposer"], "base_url": server.url}, results_dir=str(tmp_path / "local"),
                     datasets_dir=str(tmp_path / "local-datasets"))
        assert run_grid(GridConfig(**local)).ok
    run_dir = storage.resolve(f"s3://{BUCKET}/shared") / "routed"
    assert rows(run_dir) == rows(tmp_path / "local" / "routed")
    assert set(sold) == set(reference.sold())
    # and the CLI reads it from s3:// (analyze publishes the report there)
    analyzed = subprocess.run([LLM_ERM, "analyze", "--run-id", "routed", "--results-dir", f"s3://{BUCKET}/shared"],
                              cwd=submitter, env={**os.environ, **s3.env}, capture_output=True, text=True, timeout=300)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    assert "shared/routed/report/report.html" in s3.keys("shared/routed/report/")
    for key in s3.keys("shared/"):
        assert s3.env["AWS_SECRET_ACCESS_KEY"].encode() not in s3.get(key), key


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (the worker, its flow-run processes, their sandbox workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def test_a_worker_killed_mid_trial_loses_at_most_its_calls_in_flight_and_a_resume_buys_nothing_twice(
        stack, tmp_path, monkeypatch):
    """Two cpu workers share a fanned-out grid on s3://; one is SIGKILLed (with its flow-run processes, as when
    its machine dies) while its cells are mid-trial; the grid is submitted again under the same run id."""
    env, s3 = stack
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    places = {name: tmp_path / name for name in ("a", "b", "c")}
    for place in places.values():
        place.mkdir()
    # two slots each: the parent takes one, so the cells spread over both workers
    a, a_log = worker(env, s3, places["a"], "cpu", limit=2)
    b, b_log = worker(env, s3, places["b"], "cpu", limit=2)
    model = SeededModel(SCRIPT, jitter_s=0.3)
    functions = ["fn_a", "fn_c", "fn_e", "fn_b"]
    run_dir = storage.resolve(f"s3://{BUCKET}/killed") / "kill"
    replacement = None
    try:
        with WireServer(model) as server:
            grid = {"functions": functions, "lengths": [20], "attempts": 3, "trials": 3, "test_size": 400,
                    "run_id": "kill", "concurrency": 3, "results_dir": f"s3://{BUCKET}/killed",
                    "proposer": {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 20},
                    "retry_delay_s": 0.01, "analyze": False, "datasets_dir": "~/llm-erm-datasets", "fan_out": True,
                    "method_deployments": {"*": "erm-cell-cpu"}}
            submit = ["deployment", "run", "erm-grid/erm-grid-s3", "--params", json.dumps(grid)]
            prefect(env, *submit)
            deadline = time.time() + 500
            victim = None
            while victim is None:  # the first worker seen running a cell once answers are arriving
                assert time.time() < deadline, "no worker ran a cell"
                if len(model.sales) >= 6:
                    victim = next((proc for proc, log in ((a, a_log), (b, b_log))
                                   if re.search(r"Flow run 'kill fn_\w+ L20 \[erm\]' submitted", log.read_text())),
                                  None)
                time.sleep(0.1)
            for pid in reversed(_descendants(victim.pid)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            victim.wait(timeout=60)
            replacement, _ = worker(env, s3, places["c"], "cpu")  # a new machine takes the dead one's place
            out = prefect(env, *submit, "--watch", "--watch-timeout", "500", timeout=560)  # the resume
            assert "Completed" in out, out[-3000:]
            sold = model.sold()
    finally:
        for proc in (a, b, replacement):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    # an answer is bought again only when it was lost: in flight on the dead worker (at most its 2 cells x
    # concurrency 3); the other worker went on, and the resume reused every journaled answer
    twice = {seed for seed, n in sold.items() if n > 1}
    assert max(sold.values()) <= 2 and len(twice) <= 2 * 3, sorted(sold.values())
    reference = SeededModel(SCRIPT)
    from llm_erm import GridConfig, run_grid

    with WireServer(reference) as server:
        local = {k: v for k, v in grid.items() if k not in ("fan_out", "method_deployments")}
        local.update(proposer={**grid["proposer"], "base_url": server.url}, results_dir=str(tmp_path / "local"),
                     datasets_dir=str(tmp_path / "local-datasets"))
        assert run_grid(GridConfig(**local)).ok
    assert rows(run_dir) == rows(tmp_path / "local" / "kill")

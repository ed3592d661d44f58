"""The erm-grid flow on a real Prefect API, proposing through the real openai client to a real HTTP server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api import latest_artifact
from scripted import FIRST_BIT, PARITY, WRONG, ScriptedModel

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.proposers.wire_server import Fault, WireServer
from llm_erm.results import ledger

COMPARED = ["target", "length", "trial", "attempt", "text", "code", "status", "val_acc", "test_acc", "selected",
            "stopped_early"]


def grid_params(tmp_path: Path, server: WireServer, **overrides) -> dict:
    params = dict(
        functions=["fn_a", "fn_e"], lengths=[20], attempts=3, trials=2, test_size=400,
        proposer="openai-chat", model="gpt-5", base_url=server.url, timeout_s=5.0, retry_delay_s=0.01,
        concurrency=2, verify_workers=2, candidate_timeout_s=5.0, analyze=False,
        run_id="t", results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"),
    )
    return {**params, **overrides}


def rows(run_dir: Path) -> list[dict]:
    table = ledger.read_attempts(run_dir).to_pylist()
    return sorted(({k: r[k] for k in COMPARED} for r in table), key=lambda r: (r["target"], r["trial"], r["attempt"]))


def run_grid(**params):
    from llm_erm.flows.grid import erm_grid

    return erm_grid(**params)


def test_transient_faults_are_retried_and_a_permanent_error_fails_only_its_attempt(tmp_path):
    model = ScriptedModel([WRONG, FIRST_BIT, PARITY])
    with WireServer(model, transient_rate=0.2, seed=7) as server:
        server.inject(Fault.http_error(400, "bad request: unsupported parameter"))  # the very first request
        outcome = run_grid(**grid_params(tmp_path, server))
        requests = server.request_count
    got = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
    trials = {(r["target"], r["trial"]) for r in got}
    assert trials == {("fn_a", 1), ("fn_a", 2), ("fn_e", 1), ("fn_e", 2)}
    for key in trials:
        attempts = sorted(r["attempt"] for r in got if (r["target"], r["trial"]) == key)
        assert attempts == list(range(1, len(attempts) + 1))
    failed = [r for r in got if r["status"] == "propose_error"]
    assert len(failed) == 1 and "400" in failed[0]["propose_error"] and "unsupported parameter" in failed[0]["propose_error"]
    assert all(r["val_acc"] is not None for r in got if r["status"] != "propose_error")
    # every answer was bought once; the rest of the traffic was the injected faults and their retries
    assert model.total == len(got) - 1
    assert requests > model.total + 1
    assert outcome["failed"] == [] and (tmp_path / "results" / "t" / "summary.parquet").exists()


def test_early_stop_makes_exactly_one_call(tmp_path):
    model = ScriptedModel([PARITY, WRONG])
    with WireServer(model) as server:
        run_grid(**grid_params(tmp_path, server, functions=["fn_a"], attempts=5, trials=1))
        assert server.request_count == 1
    (row,) = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
    assert row["val_acc"] == 1.0 and row["stopped_early"] and row["selected"] and row["test_acc"] == 1.0
    # the UI's live artifacts: progress and the table of finished trials
    assert latest_artifact("progress-t").data == 100.0
    (trial,) = json.loads(latest_artifact("trials-t").data)
    assert trial["trial"] == "fn_a L20 t1" and trial["attempts"] == 1 and trial["solved"] is True


def test_selection_ignores_test_accuracy(tmp_path):
    spec = DatasetSpec("fn_a", 20, test_size=400)
    val = build_dataset(spec, tmp_path / "datasets").split("val").inputs

    def flipped_outside(keep: list[str], also_right_outside_val: bool) -> str:
        return (f"KEEP = {set(keep)!r}\nVAL = {set(val)!r}\n"
                "def f(x):\n    p = x.count('1') % 2\n"
                f"    right = x in KEEP or ({also_right_outside_val} and x not in VAL)\n"
                "    return p if right else 1 - p\n")

    best_test = flipped_outside(val[:60], True)  # val 0.6, test 1.0
    best_val = flipped_outside(val[:80], False)  # val 0.8, test 0.0
    with WireServer(ScriptedModel([best_test, best_val])) as server:
        run_grid(**grid_params(tmp_path, server, functions=["fn_a"], attempts=2, trials=1))
    first, second = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
    assert (first["val_acc"], first["test_acc"]) == (0.6, 1.0)
    assert (second["val_acc"], second["test_acc"]) == (0.8, 0.0)
    assert not first["selected"] and second["selected"]


def _task_run_names(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs]


def test_rerun_of_a_finished_grid_makes_no_call_and_no_task_runs_for_its_trials(tmp_path):
    from llm_erm.flows.grid import erm_grid

    model = ScriptedModel([WRONG, FIRST_BIT, PARITY])
    with WireServer(model) as server:
        params = grid_params(tmp_path, server)
        erm_grid(**params)
        calls, before = server.request_count, rows(tmp_path / "results" / "t")
        mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "t").rglob("trial*.parquet")}
        state = erm_grid(**params, return_state=True)
        assert state.is_completed() and server.request_count == calls
    assert rows(tmp_path / "results" / "t") == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    deadline = time.time() + 60  # task runs reach the API as events; wait for the last one
    while "aggregate" not in (names := _task_run_names(state.state_details.flow_run_id)) and time.time() < deadline:
        time.sleep(0.5)
    assert names == ["aggregate"]


def test_budget_stops_new_calls_and_a_bigger_budget_resumes_without_rebuying(tmp_path):
    model = ScriptedModel([WRONG, FIRST_BIT, PARITY])
    with WireServer(model) as server:
        params = grid_params(tmp_path, server, functions=["fn_e"], trials=2, concurrency=1, budget_usd=1e-6)
        run_grid(**params)
        got = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
        assert model.total == 1
        assert sorted(r["status"] for r in got).count("skipped_budget") == len(got) - 1
        run_grid(**{**params, "budget_usd": 100.0})
        assert model.total == 6  # 2 trials x 3 attempts, the first one not bought again
    got = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
    assert len(got) == 6 and all(r["status"] == "ok" for r in got)
    assert sum(r["cost_usd"] for r in got) > 0


CHILD = """
import json, sys
from llm_erm.flows.grid import erm_grid
erm_grid(**json.loads(sys.argv[1]))
"""


def test_sigkill_mid_grid_then_resume_equals_an_uninterrupted_run(tmp_path, prefect_api):
    # One trial at a time, so answers are dealt in a fixed order: fn_a t1 solves at attempt 2, fn_a t2 at
    # attempt 3, fn_e never: 2 + 3 + 3 + 3 = 11 answers. The kill lands as fn_e t1 asks for its first.
    script = [WRONG, PARITY, WRONG]
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "OPENAI_API_KEY": "sk-test"}
    child: dict[str, subprocess.Popen] = {}
    killed_after: list[int] = []

    def kill_after_five(answered: int) -> bool:
        # With one call in flight, answer 6 is asked for only after answer 5 was cached: kill on its request.
        if answered == 5 and not killed_after:
            killed_after.append(answered)
            os.kill(child["p"].pid, signal.SIGKILL)
            return True
        return False

    model = ScriptedModel(script, on_request=kill_after_five)
    with WireServer(model) as server:
        params = json.dumps(grid_params(tmp_path, server, concurrency=1))
        child["p"] = subprocess.Popen([sys.executable, "-c", CHILD, params], env=env)
        assert child["p"].wait(timeout=300) == -signal.SIGKILL and killed_after == [5]
        assert ledger.finished_trials(tmp_path / "results" / "t") == {("fn_a", 20, 1), ("fn_a", 20, 2)}
        resumed = subprocess.run([sys.executable, "-c", CHILD, params], env=env, timeout=300)
        assert resumed.returncode == 0
        answered = dict(model.answered)

    reference = ScriptedModel(script)
    with WireServer(reference) as server:
        run_grid(**grid_params(tmp_path, server, concurrency=1, run_id="ref"))
    assert rows(tmp_path / "results" / "t") == rows(tmp_path / "results" / "ref")
    assert answered == dict(reference.answered) and reference.total == 11  # no answer bought twice
    assert len(list((tmp_path / "results" / "t" / "propose-cache").iterdir())) == 11  # each kept once


@pytest.mark.parametrize("wave_size", [3])
def test_parallel_waves_propose_a_whole_wave_then_stop(tmp_path, wave_size):
    model = ScriptedModel([PARITY, WRONG, WRONG])
    with WireServer(model) as server:
        run_grid(**grid_params(tmp_path, server, functions=["fn_a"], trials=1, attempts=6, wave_size=wave_size))
        assert server.request_count == wave_size  # the wave that solved it, and no further wave
    got = sorted(ledger.read_attempts(tmp_path / "results" / "t").to_pylist(), key=lambda r: r["attempt"])
    assert [r["attempt"] for r in got] == [1, 2, 3]
    assert sum(r["selected"] for r in got) == 1 and sum(r["stopped_early"] for r in got) == 1

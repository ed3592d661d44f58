"""The erm-grid flow on a real Prefect API, proposing through the real openai client to a real HTTP server."""

from __future__ import annotations

import json
import time
from pathlib import Path

from api import latest_artifact
from scripted import FIRST_BIT, PARITY, WRONG, ScriptedModel
from waiting import scaled

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.results import ledger
from llm_erm.results.progress import cell_statuses
from llm_erm.wire.server import Fault, WireError, WireServer

COMPARED = ["target", "length", "trial", "attempt", "text", "code", "status", "val_acc", "test_acc", "selected",
            "stopped_early"]


def grid_params(tmp_path: Path, server: WireServer, **overrides) -> dict:
    # a generous call timeout: on a busy machine a slow answer must not become a retry (and a second sale)
    proposer = {"kind": "openai-chat", "model": "gpt-5", "base_url": server.url, "call_timeout_s": 60.0,
                **overrides.pop("proposer", {})}
    params = dict(
        functions=["fn_a", "fn_e"], lengths=[20], attempts=3, trials=2, test_size=400, proposer=proposer,
        retry_delay_s=0.01, concurrency=2, verify_workers=2, analyze=False,
        run_id="t", results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"),
    )
    return {**params, **overrides}


def rows(run_dir: Path) -> list[dict]:
    table = ledger.read_attempts(run_dir).to_pylist()
    return sorted(({k: r[k] for k in COMPARED} for r in table), key=lambda r: (r["target"], r["trial"], r["attempt"]))


def run_grid(**params):
    """The flow's final state (a run with failed calls ends Failed, which a plain call would raise)."""
    from llm_erm.flows.grid import erm_grid

    return erm_grid(**params, return_state=True)


def test_transient_faults_are_retried_a_permanent_error_fails_the_run_and_a_rerun_makes_only_that_call(tmp_path):
    model = ScriptedModel([WRONG, FIRST_BIT, PARITY])
    with WireServer(model, transient_rate=0.2, seed=7) as server:
        server.inject(Fault.http_error(400, "bad request: unsupported parameter"))  # the very first request
        state = run_grid(**grid_params(tmp_path, server))
        requests = server.calls
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
        # a failure never looks like success: the flow run is Failed, saying what failed and how to retry
        assert state.is_failed() and "1 model call(s) in 1 trial(s) failed" in state.message
        assert "Re-run" in state.message
        assert (tmp_path / "results" / "t" / "summary.parquet").exists()
        assert [c.state for c in cell_statuses(tmp_path / "results" / "t")].count("failed") == 1

        # the re-run makes that one call again and nothing else
        key = (failed[0]["target"], failed[0]["trial"])
        others = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "t").rglob("trial*.parquet")
                  if (p.parent.parent.name, int(p.stem[5:])) != key}
        before = model.total
        again = run_grid(**grid_params(tmp_path, server))
        assert again.is_completed(), again.message
        made = model.total - before
        assert made >= 1
    final = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
    assert not [r for r in final if r["status"] == "propose_error"]
    rerun = [r for r in final if (r["target"], r["trial"]) == key]
    assert sum(not r["reused_answer"] for r in rerun) == made  # every other answer came from the journal
    assert {p: p.stat().st_mtime_ns for p in others} == others  # the finished trials were not touched


def test_a_server_that_always_fails_fails_the_run_and_a_rerun_completes_once_it_answers(tmp_path):
    healthy = {"on": False}
    program = ScriptedModel([PARITY])

    def answer(endpoint, body):
        if not healthy["on"]:
            raise WireError(500, "the model is down")
        return program(endpoint, body)

    with WireServer(answer) as server:
        params = grid_params(tmp_path, server, functions=["fn_a"], trials=1, retries=2)
        state = run_grid(**params)
        assert state.is_failed() and "3 model call(s) in 1 trial(s) failed after their retries" in state.message
        assert server.calls == 3 * 3  # 3 attempts x (1 try + 2 retries)
        healthy["on"] = True
        state = run_grid(**params)
        assert state.is_completed(), state.message
        assert program.total == 1  # solved at attempt 1 this time
    (row,) = ledger.read_attempts(tmp_path / "results" / "t").to_pylist()
    assert row["status"] == "ok" and row["val_acc"] == 1.0


def test_early_stop_makes_exactly_one_call_and_the_ui_gets_one_live_trials_table(tmp_path):
    model = ScriptedModel([PARITY, WRONG])
    with WireServer(model) as server:
        state = run_grid(**grid_params(tmp_path, server, functions=["fn_a"], attempts=5, trials=1, run_id="early"))
        assert state.is_completed() and server.calls == 1
    (row,) = ledger.read_attempts(tmp_path / "results" / "early").to_pylist()
    assert row["val_acc"] == 1.0 and row["stopped_early"] and row["selected"] and row["test_acc"] == 1.0
    assert row["finish_reason"] == "stop" and row["response_id"] and row["seed"] is not None
    # the UI's live artifacts: progress and the table of finished trials, each one artifact updated in place
    assert latest_artifact("progress-early").data == 100.0
    (trial,) = json.loads(latest_artifact("trials-early").data)
    assert trial["trial"] == "fn_a L20 t1" and trial["attempts"] == 1 and trial["solved"] is True
    assert _artifact_versions("trials-early") == 1


def _artifact_versions(key: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return len(client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))


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


def _wait_for_task_runs(flow_run_id, last: str) -> list[str]:
    deadline = time.monotonic() + scaled(60)  # task runs reach the API as events; wait for the last one
    while last not in (names := _task_run_names(flow_run_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return names


def test_task_runs_read_as_the_grid_and_a_rerun_creates_none_for_finished_trials(tmp_path):
    model = ScriptedModel([WRONG, FIRST_BIT, PARITY])
    with WireServer(model) as server:
        params = grid_params(tmp_path, server)
        first = run_grid(**params)
        names = _wait_for_task_runs(first.state_details.flow_run_id, "aggregate")
        assert sorted(names) == sorted(["prepare fn_a L20", "prepare fn_e L20", "trial fn_a L20 t1", "trial fn_a L20 t2", "trial fn_e L20 t1",
                                        "trial fn_e L20 t2", "aggregate"])
        calls, before = server.calls, rows(tmp_path / "results" / "t")
        mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "t").rglob("trial*.parquet")}
        state = run_grid(**params)
        assert state.is_completed() and server.calls == calls
    assert rows(tmp_path / "results" / "t") == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert _wait_for_task_runs(state.state_details.flow_run_id, "aggregate") == ["aggregate"]


def test_flow_runs_are_named_after_the_run_id(tmp_path):
    from prefect.client.orchestration import get_client

    with WireServer(ScriptedModel([PARITY])) as server:
        state = run_grid(**grid_params(tmp_path, server, functions=["fn_a"], trials=1, run_id="named-run"))
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).name == "named-run"
    # the manifest says where to watch it (the viewer links there)
    where = ledger.read_manifest(tmp_path / "results" / "named-run")["prefect"]
    assert where["flow_run_id"] == str(state.state_details.flow_run_id) and where["api_url"].endswith("/api")


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


def test_parallel_waves_propose_a_whole_wave_then_stop(tmp_path):
    model = ScriptedModel([PARITY, WRONG, WRONG])
    with WireServer(model) as server:
        run_grid(**grid_params(tmp_path, server, functions=["fn_a"], trials=1, attempts=6, wave_size=3))
        assert server.calls == 3  # the wave that solved it, and no further wave
    got = sorted(ledger.read_attempts(tmp_path / "results" / "t").to_pylist(), key=lambda r: r["attempt"])
    assert [r["attempt"] for r in got] == [1, 2, 3]
    assert sum(r["selected"] for r in got) == 1 and sum(r["stopped_early"] for r in got) == 1

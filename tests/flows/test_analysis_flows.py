"""erm-analysis and erm-nightly on a real Prefect API, over real grid runs."""

from __future__ import annotations

from pathlib import Path

from api import latest_artifact
from scripted import FIRST_BIT, PARITY, WRONG, ScriptedModel

from llm_erm.results import ledger
from llm_erm.wire.server import WireServer


def grid(tmp_path: Path, server: WireServer, **overrides) -> dict:
    return {"functions": ["fn_a"], "lengths": [20], "attempts": 2, "trials": 2, "test_size": 400,
            "proposer": {"kind": "openai-chat", "base_url": server.url}, "retry_delay_s": 0.01, "analyze": False,
            "datasets_dir": str(tmp_path / "datasets"), **overrides}


def test_the_grid_ends_with_the_analysis_and_a_leaking_run_fails_it(tmp_path):
    from llm_erm.flows.analysis import erm_analysis
    from llm_erm.flows.grid import erm_grid

    results = tmp_path / "results"
    with WireServer(ScriptedModel([WRONG, PARITY])) as server:
        erm_grid(**grid(tmp_path, server, analyze=True, run_id="clean", results_dir=str(results)))
    assert (results / "clean" / "report" / "report.html").exists()
    assert "clean" in latest_artifact("analysis-clean").data
    # the headline and the report link are on the grid run too, not only on its analysis subflow
    assert "report.html" in latest_artifact("headline-clean").data

    # plant a leak: a test input copied into the training split of the dataset the run used
    dataset = Path(ledger.read_attempts(results / "clean").column("dataset_path")[0].as_py())
    test_line = (dataset / "test.txt").read_text().splitlines()[0]
    with open(dataset / "train.txt", "a", encoding="utf-8") as fh:
        fh.write(test_line + "\n")
    state = erm_analysis(run_id="clean", results_dir=str(results), return_state=True)
    assert state.is_failed() and "leaked" in state.message
    # and a grid whose analysis finds the leak ends Failed itself
    with WireServer(ScriptedModel([WRONG, PARITY])) as server:
        grid_state = erm_grid(**grid(tmp_path, server, analyze=True, run_id="clean", results_dir=str(results),
                                     attempts=3), return_state=True)
    assert grid_state.is_failed() and "leaked" in grid_state.message


def test_nightly_flags_a_regression_against_the_previous_night(tmp_path):
    from llm_erm.flows.analysis import erm_nightly

    results = str(tmp_path / "results")
    with WireServer(ScriptedModel([PARITY])) as good:
        first = erm_nightly(grid=grid(tmp_path, good), run_id="nightly-2026-11-20", results_dir=results)
    assert first == {"run_id": "nightly-2026-11-20", "baseline": None, "regressions": 0}
    # the cheap baselines run beside erm, on the same splits
    rows = ledger.read_attempts(tmp_path / "results" / "nightly-2026-11-20").to_pylist()
    assert {r["method_label"] for r in rows} == {"erm", "xgboost", "decision-tree", "logreg"}
    assert len({r["dataset_id"] for r in rows}) == 1

    with WireServer(ScriptedModel([PARITY])) as same:
        again = erm_nightly(grid=grid(tmp_path, same), run_id="nightly-2026-11-21", results_dir=results)
    assert again == {"run_id": "nightly-2026-11-21", "baseline": "nightly-2026-11-20", "regressions": 0}

    with WireServer(ScriptedModel([FIRST_BIT])) as worse:
        state = erm_nightly(grid=grid(tmp_path, worse), run_id="nightly-2026-11-22", results_dir=results,
                            return_state=True)
    assert state.is_failed() and "regression" in state.message and "fn_a L20" in state.message
    assert "xgboost fn_a L20" not in state.message  # the baselines did not change: only erm regressed
    assert "nightly-2026-11-21" in latest_artifact("nightly-nightly-2026-11-22").data


def test_dry_run_flow_spends_nothing_and_writes_no_ledger(tmp_path):
    from llm_erm.flows.grid import erm_grid

    with WireServer(ScriptedModel([PARITY])) as server:
        outcome = erm_grid(**grid(tmp_path, server, dry_run=True, run_id="dry", results_dir=str(tmp_path / "r")))
        # no model call: at most a look at the server's context size (GET /props), which refuses a prompt too long
        assert not [r for r in server.requests if r.method != "GET"]
    assert outcome == {"run_id": "dry", "dry_run": True, "calls": 4}
    assert not (tmp_path / "r").exists()

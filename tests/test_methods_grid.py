"""Trained baselines as methods of a grid: the same cells and splits as erm, sample-size sweeps, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llm_erm import GridConfig, run_grid
from llm_erm.results import ledger

LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))


def test_baselines_beside_erm_on_the_same_splits_and_a_sample_size_sweep(tmp_path):
    cfg = GridConfig(functions=["fn_a"], lengths=[20], test_size=400, proposer="enumerate", trials=2,
                     methods=["erm", "xgboost", "logreg",
                              {"method": "sgd", "settings": {"epochs": 5, "eval_points": 1}}],
                     sample_sizes=[200, 1000], analyze=False, run_id="b",
                     results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"))
    result = run_grid(cfg)
    assert result.ok, result.failure_message()
    rows = ledger.read_attempts(tmp_path / "results" / "b").to_pylist()
    labels = {r["method_label"] for r in rows}
    assert labels == {"erm", "xgboost", "xgboost-n1000", "logreg", "logreg-n1000", "sgd", "sgd-n1000"}
    at_200 = {r["dataset_id"] for r in rows if not r["method_label"].endswith("-n1000")}
    assert len(at_200) == 1  # erm and every baseline at the paper's 200 samples: one cell, one set of splits
    sweep = {r["dataset_id"] for r in rows if r["method_label"].endswith("-n1000")}
    assert len(sweep) == 1 and sweep.isdisjoint(at_200)  # the 1 000-sample point is its own leak-free store
    for row in (r for r in rows if r["method"] != "erm"):
        assert row["attempt"] == 1 and row["selected"] and row["status"] == "ok" and row["code"] is None
        assert row["n_train"] == (1000 if row["method_label"].endswith("-n1000") else 200)
        extra = json.loads(row["method_extra"])
        assert extra["settings"] and len(extra["predictions"]) == 400
    sgd = next(r for r in rows if r["method_label"] == "sgd")
    assert json.loads(sgd["method_extra"])["curve"]  # the training curve is kept
    assert {r["trial"] for r in rows if r["method_label"] == "xgboost"} == {1, 2}
    summary = {c["method_label"]: c for c in result.cells}
    assert summary["erm"]["test_mean"] == 1.0 and 0.35 < summary["xgboost"]["test_mean"] < 0.65  # parity: chance
    # the paper's table, as Parquet/CSV beside the report
    import pyarrow.parquet as pq

    from llm_erm.analysis import analyze_run

    analyze_run(tmp_path / "results" / "b")
    table = pq.read_table(tmp_path / "results" / "b" / "report" / "methods_wide.parquet").to_pylist()
    assert len(table) == 1 and table[0]["erm"] == 1.0 and set(table[0]) >= {"xgboost", "sgd-n1000", "logreg"}
    assert (tmp_path / "results" / "b" / "report" / "methods.csv").exists()
    # resume: nothing left to do, nothing trained again
    again = run_grid(cfg)
    assert again.ok and again.pending_before == 0


def test_the_cli_runs_methods_and_refuses_a_missing_or_wrong_setting(tmp_path):
    done = subprocess.run([LLM_ERM, "run", "--functions", "fn_c", "--lengths", "20", "--test-size", "400",
                           "--proposer", "enumerate", "--methods", "erm", "decision-tree", "--no-prefect",
                           "--no-analyze", "--run-id", "c", "--results-dir", str(tmp_path / "results"),
                           "--datasets-dir", str(tmp_path / "datasets")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "decision-tree" in done.stdout and "method" in done.stdout  # the table names each method
    config = tmp_path / "grid.json"
    config.write_text(json.dumps({"functions": ["fn_a"], "methods": [{"method": "xgboost",
                                                                      "settings": {"n_trees": 3}}]}))
    bad = subprocess.run([LLM_ERM, "run", "--config", str(config), "--results-dir", str(tmp_path / "r2")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "n_trees" in bad.stderr
    assert not (tmp_path / "r2").exists()

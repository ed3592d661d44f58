"""Later commands take the run's recorded settings: `generalize` and `verify --run-id` score with the run's
candidate timeout (not a default of their own) unless told otherwise; the grid's generalisation uses its own
sandbox pool."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from llm_erm import GridConfig, run_grid
from llm_erm.config import default
from llm_erm.wire.server import Reply, WireServer

LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))
# parity, after ~20 million loop steps per input: about 0.1 s of CPU, ten times the 0.01 s default per input
SLOW = "def f(x):\n    s = 0\n    for i in range(20_000_000):\n        s += i\n    return x.count('1') % 2\n"


def slow_run(tmp_path: Path) -> Path:
    with WireServer(lambda endpoint, body: Reply(json.dumps({"code": SLOW}))) as server:
        result = run_grid(GridConfig(
            functions=["fn_a"], lengths=[20], train_size=10, val_size=10, test_size=20, attempts=1,
            candidate_timeout_s=1.0, analyze=False, run_id="slow", verify_workers=1, retry_delay_s=0.01,
            proposer={"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 10},
            results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets")))
    assert result.ok and result.cells[0]["test_mean"] == 1.0  # within the run's 1 s per input
    return result.run_dir


def generalize(tmp_path: Path, *options: str) -> dict:
    done = subprocess.run([LLM_ERM, "generalize", "--run-id", "slow", "--lengths", "24", "--test-size", "20",
                           "--results-dir", str(tmp_path / "results"), "--datasets-dir", str(tmp_path / "datasets"),
                           *options], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return pq.read_table(tmp_path / "results" / "slow" / "generalization.parquet").to_pylist()[0]


def test_generalize_and_verify_score_with_the_runs_candidate_timeout_unless_told_otherwise(tmp_path):
    assert default("candidate_timeout_s") == 0.01
    run_dir = slow_run(tmp_path)
    assert GridConfig.recorded(run_dir).candidate_timeout_s == 1.0
    row = generalize(tmp_path)
    assert (row["status"], row["test_acc"]) == ("ok", 1.0)  # the run's 1 s, not 0.01 s
    assert generalize(tmp_path, "--candidate-timeout", "0.01")["status"] == "timeout"  # told otherwise
    program = tmp_path / "slow.py"
    program.write_text(SLOW)
    common = [LLM_ERM, "verify", str(program), "--function", "fn_a", "--length", "20", "--json"]
    recorded = subprocess.run([*common, "--run-id", "slow", "--results-dir", str(tmp_path / "results")],
                              capture_output=True, text=True, timeout=300)
    assert recorded.returncode == 0, recorded.stderr
    verdict = json.loads(recorded.stdout)
    assert verdict["status"] == "ok" and verdict["test_acc"] == 1.0
    # the run's sizes and datasets folder: the very dataset the run scored on
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert verdict["dataset_id"] == manifest["cells"][0]["dataset_id"]


def test_the_grids_generalisation_uses_the_grids_sandbox(tmp_path, monkeypatch):
    from llm_erm.verify import sandbox as sandbox_module

    opened = []
    original = sandbox_module.Sandbox.__init__

    def counting(self, *args, **kwargs):
        opened.append(kwargs.get("time_per_input_s"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(sandbox_module.Sandbox, "__init__", counting)
    result = run_grid(GridConfig(functions=["fn_a"], lengths=[20], test_size=200, proposer="enumerate",
                                 analyze=False, generalize_lengths=[24], candidate_timeout_s=0.02,
                                 results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets")))
    assert result.ok and (result.run_dir / "generalization.parquet").exists()
    assert opened == [0.02]  # one pool for the grid and its generalisation

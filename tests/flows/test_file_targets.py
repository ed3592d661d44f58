"""A labelled file as a target, through the erm-grid flow: its safe name in every path, the analysis finds it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))
from test_cli_run import write_first_bit_file  # noqa: E402

from llm_erm.results import ledger  # noqa: E402


def test_a_labelled_file_target_through_the_flow(tmp_path, monkeypatch):
    from llm_erm.flows.grid import erm_grid

    write_first_bit_file(tmp_path / "data" / "good.csv")
    monkeypatch.chdir(tmp_path)
    state = erm_grid(functions=["data/good.csv"], attempts=2, trials=2, test_size=400, proposer={"kind": "enumerate"},
                     run_id="flowfile", results_dir="results", datasets_dir="datasets", sandbox="auto",
                     return_state=True)
    assert state.is_completed(), state.message
    run_dir = tmp_path / "results" / "flowfile"
    (target,) = [p.name for p in (run_dir / "attempts" / "erm").iterdir()]
    assert re.fullmatch(r"file-good-[0-9a-f]{12}", target)
    assert sorted(p.name for p in (run_dir / "attempts" / "erm" / target / "L16").iterdir()) == [
        "trial1.parquet", "trial2.parquet"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["good.csv"]  # nothing beside the user's data
    assert {r["target"] for r in ledger.read_attempts(run_dir).to_pylist()} == {target}
    assert (run_dir / "report" / "report.html").exists()  # the analysis found the trials

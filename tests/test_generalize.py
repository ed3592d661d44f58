"""Length generalisation: selected programs scored at other lengths, through the real sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llm_erm import GridConfig, run_grid
from llm_erm.analysis.generalize import fresh_test_set, needed_length, source_rule
from llm_erm.datasets import DatasetSpec

LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))


def test_parity_rand_extends_with_the_source_positions_and_is_undefined_where_they_do_not_fit(tmp_path):
    rule = source_rule("fn_e", 20)  # positions 2, 14, 18 at L=20
    assert rule("0" * 2 + "1" + "0" * 40) == 1 and rule("0" * 14 + "1" + "0" * 3 + "1" + "0" * 30) == 0
    assert needed_length("fn_e", 20) == 19 and needed_length("fn_a", 20) == 1 and source_rule("fn_a", 20) is None
    data = fresh_test_set(DatasetSpec("fn_e", 20), 20, 50, 400, tmp_path)
    assert len(data.inputs) >= 300 and sum(data.labels) * 2 == len(data.labels)  # balanced again
    assert all(len(x) == 50 and y == rule(x) for x, y in zip(data.inputs, data.labels, strict=True))


def test_an_enumerated_parity_program_generalises_and_the_cli_writes_the_table(tmp_path):
    cfg = GridConfig(functions=["fn_a", "fn_e"], lengths=[20], test_size=400, proposer="enumerate", analyze=False,
                     run_id="g", results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"),
                     generalize_lengths=[20, 30, 10])
    assert run_grid(cfg).ok
    table = pq.read_table(tmp_path / "results" / "g" / "generalization.parquet").to_pandas()
    by = {(r.target, r.length): r for r in table.itertuples()}
    # parity of all bits is one rule at every length; the found program counts '1's, so it keeps working
    assert by["fn_a", 30].test_acc == 1.0 and by["fn_a", 10].test_acc == 1.0 and by["fn_a", 20].test_acc == 1.0
    assert by["fn_e", 30].test_acc == 1.0  # the 3 positions of L=20, read in longer strings
    assert by["fn_e", 10].status == "undefined" and by["fn_e", 10].test_acc != by["fn_e", 10].test_acc  # NaN
    done = subprocess.run([LLM_ERM, "generalize", "--run-id", "g", "--lengths", "40", "60", "--test-size", "200",
                           "--results-dir", str(tmp_path / "results"), "--datasets-dir", str(tmp_path / "datasets")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "L40" in done.stdout and "L60" in done.stdout
    again = pq.read_table(tmp_path / "results" / "g" / "generalization.parquet").to_pandas()
    # merged: the run's own lengths stay, the new ones are added
    assert sorted(set(again["length"])) == [10, 20, 30, 40, 60]
    assert (again[again["length"].isin([40, 60])]["test_acc"] == 1.0).all()
    assert len(again) == len(table) + 4  # 2 programs x 2 new lengths
    before = again
    done = subprocess.run([LLM_ERM, "generalize", "--run-id", "g", "--lengths", "0", "--results-dir",
                           str(tmp_path / "results")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "--lengths must be positive integers, got 0" in done.stderr, done.stderr
    after = pq.read_table(tmp_path / "results" / "g" / "generalization.parquet").to_pandas()
    assert after.equals(before)


@pytest.mark.parametrize("args", [["--lengths", "x"], ["--lengths", "20", "--test-size", "3"], ["--lengths", "0"],
                                  ["--lengths", "20", "-3"]])
def test_bad_input_is_one_line(tmp_path, args):
    (tmp_path / "results" / "r" / "attempts").mkdir(parents=True)
    done = subprocess.run([LLM_ERM, "generalize", "--run-id", "r", *args, "--results-dir", str(tmp_path / "results")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: ")


def test_trained_baselines_are_scored_at_other_lengths_beside_erm(tmp_path):
    from llm_erm import GridConfig, run_grid
    from llm_erm.analysis.generalize import generalize_run

    datasets = tmp_path / "datasets"
    cfg = GridConfig(functions=["fn_c"], lengths=[20], test_size=400, proposer="enumerate",
                     methods=["erm", "decision-tree"], analyze=False, run_id="g",
                     results_dir=str(tmp_path / "results"), datasets_dir=str(datasets))
    assert run_grid(cfg).ok
    table = generalize_run(tmp_path / "results" / "g", [20, 30], datasets_dir=datasets, test_size=400,
                           sandbox_mode="auto")
    tree = table[table["method_label"] == "decision-tree"].set_index("length")
    assert set(tree.index) == {20, 30} and (tree["status"] == "ok").all()
    assert tree["test_n"].min() > 300 and tree["test_acc"].between(0, 1).all()
    assert "cut or padded to L=20" in tree.loc[30, "note"] and "trained again" in tree.loc[20, "note"]
    assert set(table["method_label"]) == {"erm", "decision-tree"}  # erm's programs beside the baseline
    again = generalize_run(tmp_path / "results" / "g", [30], datasets_dir=datasets, test_size=400,
                           sandbox_mode="auto")
    again = again[(again["method_label"] == "decision-tree") & (again["length"] == 30)]  # merged with L20's rows
    assert again["test_acc"].item() == tree.loc[30, "test_acc"]

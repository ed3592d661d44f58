"""Run comparison: a planted regression is reported; identical ledgers and noise-sized changes are not."""

import shutil

import pyarrow as pa
import pytest
from analysis_helpers import synthetic_run
from typer.testing import CliRunner

from llm_erm.analysis.compare import TEST_DROP_FLOOR, compare_runs
from llm_erm.cli import app
from llm_erm.results import ledger
from llm_erm.results.schema import ATTEMPT_SCHEMA


@pytest.fixture
def baseline(tmp_path):
    return synthetic_run(tmp_path / "results" / "base", tmp_path / "datasets", trials=4, attempts=3)


def candidate_from(baseline, name, change):
    """A copy of the baseline's ledger with `change(rows_of_one_trial)` applied to every trial."""
    run_dir = baseline.parent / name
    shutil.copytree(baseline, run_dir)
    attempts = ledger.read_attempts(run_dir).to_pandas()
    for (target, length, trial), rows in attempts.groupby(["target", "length", "trial"]):
        table = pa.Table.from_pandas(change(rows.copy()), schema=ATTEMPT_SCHEMA, preserve_index=False)
        ledger.write_table(ledger.trial_path(run_dir, "erm", target, int(length), int(trial)), table)
    return run_dir


def only(target, length, edit):
    def change(rows):
        is_cell = (rows["target"] == target) & (rows["length"] == length)
        return edit(rows) if is_cell.all() else rows

    return change


def test_identical_ledgers_report_no_regression(baseline):
    comparison = compare_runs(baseline, candidate_from(baseline, "same", lambda rows: rows))
    assert comparison.ok and comparison.regressions == []
    assert len(comparison.table) == 4 and comparison.table["test_delta"].eq(0).all()
    assert comparison.table["same_dataset"].all()
    assert "0 regression(s)" in comparison.to_markdown()


def test_a_planted_test_accuracy_drop_is_reported_for_that_cell_only(baseline):
    def drop(rows):
        rows["test_acc"] = rows["test_acc"] - 0.3
        return rows

    comparison = compare_runs(baseline, candidate_from(baseline, "worse", only("fn_a", 24, drop)))
    assert [(r.target, r.length, r.kind) for r in comparison.regressions] == [("fn_a", 24, "test_accuracy")]
    row = comparison.table.set_index(["target", "length"]).loc[("fn_a", 24)]
    assert row["test_delta"] == pytest.approx(-0.3)
    assert row["regression"] and row["reasons"] == "test_accuracy"
    markdown = comparison.to_markdown()
    assert "1 regression(s)" in markdown and "fn_a" in markdown and "test_accuracy" in markdown


def test_a_drop_within_the_noise_floor_is_not_a_regression(baseline):
    def nudge(rows):
        rows["test_acc"] = rows["test_acc"] - TEST_DROP_FLOOR / 2
        return rows

    comparison = compare_runs(baseline, candidate_from(baseline, "nudged", nudge))
    assert comparison.ok
    assert comparison.table["test_delta"].to_numpy() == pytest.approx(-TEST_DROP_FLOOR / 2)


def test_a_worse_status_mix_and_a_lost_cell_are_reported(baseline):
    def break_all(rows):
        rows["status"] = "syntax_error"
        rows[["val_acc", "test_acc"]] = None
        return rows

    candidate = candidate_from(baseline, "broken", only("fn_b", 20, break_all))
    shutil.rmtree(candidate / "attempts" / "erm" / "fn_b" / "L24")
    comparison = compare_runs(baseline, candidate)
    kinds = sorted((r.target, r.length, r.kind) for r in comparison.regressions)
    assert kinds == [("fn_b", 20, "no_result"), ("fn_b", 20, "status_mix")]
    assert comparison.only_in_baseline == [("erm", "fn_b", 24)] and comparison.only_in_candidate == []
    assert "Only in the baseline: fn_b L24" in comparison.to_markdown()


def test_cli_compare_exits_1_and_names_the_regression(baseline):
    def drop(rows):
        rows["test_acc"] = 0.0
        return rows

    candidate_from(baseline, "zero", only("fn_b", 24, drop))
    result = CliRunner().invoke(app, ["compare", "base", "zero", "--results-dir", str(baseline.parent)])
    assert result.exit_code == 1, result.output
    assert "REGRESSION fn_b L24 test_accuracy" in result.output

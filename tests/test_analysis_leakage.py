"""Leakage checks: planted overlaps and duplicates are caught and named; a clean run reports zero."""

import random

from analysis_helpers import attempt_row, clean_store, random_inputs, synthetic_run, write_store, write_trials

from llm_erm.analysis import analyze_run
from llm_erm.analysis.leakage import LEAK, WARNING, check_leakage
from llm_erm.results import ledger


def one_trial_run(run_dir, store, code="def f(x):\n    return 0\n"):
    write_trials(run_dir, [attempt_row("fn_a", 20, 1, 1, 0.5, 0.5, code=code, dataset_path=str(store))])
    return ledger.read_attempts(run_dir).to_pandas()


def test_a_clean_run_reports_zero(tmp_path):
    run_dir = synthetic_run(tmp_path / "run", tmp_path / "datasets")
    report = check_leakage(run_dir)
    assert report.ok
    assert report.findings == []
    assert len(report.datasets) == 4
    overlaps = report.datasets[["overlap_train_val", "overlap_train_test", "overlap_val_test"]]
    assert overlaps.to_numpy().sum() == 0
    assert report.candidates_checked > 0


def test_a_planted_overlap_is_caught_and_named(tmp_path):
    store, splits = clean_store(tmp_path / "datasets" / "fn_a" / "L20")
    planted = splits["train"][3]
    write_store(store, splits["train"], splits["val"], splits["test"][:-1] + [planted])
    report = check_leakage(one_trial_run(tmp_path / "run", store))
    assert not report.ok
    [finding] = report.leaks
    assert finding.kind == "split_overlap"
    assert finding.dataset_path == str(store)
    assert (finding.target, finding.length, finding.count) == ("fn_a", 20, 1)
    assert "train and test" in finding.detail and planted in finding.detail
    assert report.datasets.loc[0, "overlap_train_test"] == 1


def test_duplicates_fail_in_train_and_val_but_are_only_counted_in_test(tmp_path):
    store, splits = clean_store(tmp_path / "datasets" / "fn_a" / "L20")
    repeated_test = splits["test"] + splits["test"][:2]
    write_store(store, splits["train"], splits["val"][:-1] + [splits["val"][0]], repeated_test)
    report = check_leakage(one_trial_run(tmp_path / "run", store))
    kinds = {(f.kind, f.severity, f.count) for f in report.findings}
    assert kinds == {("duplicate_inputs", LEAK, 1), ("test_duplicates", WARNING, 2)}
    assert "val repeats 1 input" in report.leaks[0].detail
    assert report.datasets.loc[0, "test_duplicates"] == 2


def test_hard_coded_inputs_training_is_flagged_held_out_fails(tmp_path):
    store, splits = clean_store(tmp_path / "datasets" / "fn_a" / "L20")
    memorised = f"def f(x):\n    return 1 if x in ({splits['train'][0]!r}, '{splits['train'][1]}') else 0\n"
    report = check_leakage(one_trial_run(tmp_path / "a", store, code=memorised))
    assert report.ok  # the model was shown training inputs: memorising them is not leakage
    [finding] = report.findings
    assert (finding.kind, finding.severity, finding.count) == ("training_input_in_code", WARNING, 2)
    assert (finding.trial, finding.attempt) == (1, 1)

    knows_test = f"def f(x):\n    return int(x == '{splits['test'][7]}')\n"
    report = check_leakage(one_trial_run(tmp_path / "b", store, code=knows_test))
    assert not report.ok
    assert [f.kind for f in report.leaks] == ["heldout_input_in_code"]
    assert splits["test"][7] in report.leaks[0].detail


def test_short_patterns_and_substrings_are_not_hard_coded_inputs(tmp_path):
    store, splits = clean_store(tmp_path / "datasets" / "fn_a" / "L20")
    code = f"def f(x):\n    return int('10101010' in x or x.startswith('{splits['train'][0][:19]}'))\n"
    assert check_leakage(one_trial_run(tmp_path / "run", store, code=code)).findings == []


def test_an_unreadable_dataset_is_not_checked_and_no_leak(tmp_path):
    store, _ = clean_store(tmp_path / "datasets" / "fn_a" / "L20")
    (store / "val.txt").write_text("0101 -> 1\nnot a line\n", encoding="utf-8")
    missing = tmp_path / "nowhere"
    for path, words in ((store, "val.txt:2"), (missing, "No such file")):
        report = check_leakage(one_trial_run(tmp_path / f"run-{path.name}", path))
        assert report.leaks == [] and report.ok
        assert [(f.kind, f.severity) for f in report.not_checked] == [("dataset_not_checked", "warning")]
        assert words in report.not_checked[0].detail


def test_a_run_that_names_no_dataset_is_not_checked(tmp_path):
    run_dir = tmp_path / "run"
    write_trials(run_dir, [attempt_row("fn_a", 20, 1, 1, 0.5, 0.5)])  # no dataset_path
    result = analyze_run(run_dir)
    assert result.leakage.leaks == []
    assert [(f.kind, f.target, f.length) for f in result.leakage.not_checked] == [("dataset_not_checked", "fn_a", 20)]
    assert (run_dir / "report" / "leakage_datasets.parquet").exists()


def test_a_run_with_leakage_is_marked_failed_by_the_analysis(tmp_path):
    run_dir = synthetic_run(tmp_path / "run", tmp_path / "datasets")
    store = tmp_path / "datasets" / "fn_b" / "L24"
    val = (store / "val.txt").read_text().splitlines(keepends=True)
    with (store / "train.txt").open("a") as train:
        train.write(val[0])  # a validation input planted in train
    result = analyze_run(run_dir)
    assert not result.ok
    assert [(f.kind, f.target, f.length) for f in result.leakage.leaks] == [("split_overlap", "fn_b", 24)]
    assert "FAILED" in result.headline and str(store) in result.headline


def test_scanning_many_inputs_finds_a_literal_in_any_position(tmp_path):
    rng = random.Random(5)
    train = random_inputs(50, 30, rng)
    store = write_store(tmp_path / "store", train, random_inputs(50, 30, rng, set(train)), [])
    code = "TABLE = '" + "0" * 13 + train[42] + "1" * 7 + "'\ndef f(x):\n    return int(x in TABLE)\n"
    [finding] = check_leakage(one_trial_run(tmp_path / "run", store, code=code)).findings
    assert finding.kind == "training_input_in_code" and train[42] in finding.detail

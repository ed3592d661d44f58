"""One selection rule: the trial, its summary, the statistics (selection, progression, pass@k) and the viewer
all choose the same attempt on the same ledger, under every rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from analysis_helpers import attempt_row  # noqa: E402

from llm_erm.analysis.stats import pass_at_k_table, progression, summarize_cells, summarize_trials  # noqa: E402
from llm_erm.engine.results import TrialResult  # noqa: E402
from llm_erm.results import ledger  # noqa: E402
from llm_erm.results.rows import finish_trial  # noqa: E402
from llm_erm.results.selection import RULES  # noqa: E402

# trial 1: two attempts tie at val 0.75 (test 0.6 with 50 AST nodes, test 0.9 with 10), a third at val 0.5;
# trial 2: solved at attempt 2 (val 1.0), where it stopped
TRIALS = {1: [(0.75, 0.6, 50), (0.75, 0.9, 10), (0.5, 1.0, 5)], 2: [(0.5, 0.4, 30), (1.0, 0.95, 40)]}
EXPECTED = {"erm": {1: 1, 2: 2}, "shortest": {1: 2, 2: 2}}  # the attempt each rule selects, per trial


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_surface_selects_what_the_rule_selects(tmp_path, name):
    from llm_erm.viewer.data import Results

    assert set(EXPECTED) == set(RULES), "a new rule: add what it selects here"
    run_dir = tmp_path / "results" / "run"
    results = {}
    for trial, scores in TRIALS.items():
        rows = [attempt_row("fn_a", 20, trial, a, val, test, ast_nodes=nodes, method="erm", method_label="erm")
                for a, (val, test, nodes) in enumerate(scores, start=1)]
        rows = finish_trial(rows, 3, name)  # the trial's own selection, as the engine writes it
        ledger.write_trial(run_dir, "erm", "fn_a", 20, trial, rows)
        results[trial] = TrialResult("fn_a", 20, trial, rows)
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {"run_id": "run", "selection_rule": name})
    expected = EXPECTED[name]
    tests = {t: dict(enumerate(TRIALS[t], start=1))[a][1] for t, a in expected.items()}

    # the trial and its summary
    assert {t: r.selected["attempt"] for t, r in results.items()} == expected
    assert {t: r.summary()["solved"] for t, r in results.items()} == {1: False, 2: True}
    assert {t: r.summary()["selected test"] for t, r in results.items()} == tests

    # the statistics, from the ledger
    attempts = ledger.read_attempts(run_dir).to_pandas()
    trials = summarize_trials(attempts).set_index("trial")
    assert trials["selected_attempt"].astype(int).to_dict() == expected
    assert trials["selected_test_acc"].to_dict() == tests
    assert trials["val_successes"].to_dict() == {1: 0, 2: 1}
    final = progression(attempts).groupby("trial").last()["best_test_acc"].to_dict()
    assert final == tests  # the progression plot ends where the headline is
    cell = summarize_cells(attempts).iloc[0]
    assert cell["test_mean"] == pytest.approx(sum(tests.values()) / 2)
    pass1 = pass_at_k_table(summarize_trials(attempts), 3).set_index("k")["val_pass_at_k"][1]
    assert pass1 == pytest.approx((0 / 3 + 1 / 2) / 2)

    # the viewer
    view = Results(tmp_path / "results").cell("run", "erm", "fn_a", 20)
    assert {t["trial"]: t["selected_attempt"] for t in view["trials"]} == expected
    assert {t["trial"]: [a["attempt"] for a in t["attempts"] if a["selected_by_rule"]] for t in view["trials"]} \
        == {t: [a] for t, a in expected.items()}

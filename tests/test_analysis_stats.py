"""Statistics on hand-built ledgers equal hand-computed values (llm_erm/analysis/stats.py's definitions)."""

import math

import pandas as pd
import pytest
from analysis_helpers import attempt_row, write_trials

from llm_erm.analysis.stats import (
    mean_std_ci,
    pass_at_k,
    progression,
    select_attempts,
    summarize_cells,
    t_quantile_975,
)
from llm_erm.results import ledger

T_975_DF2 = 4.302652729749464  # Student's t table, 0.975 quantile, 2 degrees of freedom
T_975_DF4 = 2.7764451051977987  # ... 4 degrees of freedom


def test_pass_at_k_matches_the_binomial_formula():
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))  # = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 2, 3) == pytest.approx(1 - 1 / 10)
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the success rate
    assert pass_at_k(4, 0, 4) == 0.0
    assert pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 contain one of the 2 successes


@pytest.mark.parametrize("n, c, k", [(2, 0, 3), (3, 4, 1), (3, 1, 0), (-1, 0, 1)])
def test_pass_at_k_refuses_impossible_arguments(n, c, k):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(n, c, k)


def test_t_quantiles_match_the_tables():
    assert t_quantile_975(1) == pytest.approx(12.7062047, abs=1e-6)
    assert t_quantile_975(2) == pytest.approx(T_975_DF2, abs=1e-9)
    assert t_quantile_975(4) == pytest.approx(T_975_DF4, abs=1e-9)
    assert t_quantile_975(1000) == pytest.approx(1.9623391, abs=1e-6)


def test_mean_population_std_and_t_interval():
    values = [0.8, 1.0, 0.6, 0.9, 0.7]
    mean, std, low, high = mean_std_ci(values)
    assert mean == pytest.approx(0.8)
    assert std == pytest.approx(math.sqrt((0.0 + 0.04 + 0.04 + 0.01 + 0.01) / 5))  # population: / n
    half = T_975_DF4 * math.sqrt(0.10 / 4) / math.sqrt(5)  # sample std: / (n - 1)
    assert (low, high) == pytest.approx((0.8 - half, 0.8 + half))


def test_one_value_has_no_interval_and_nan_is_ignored():
    mean, std, low, high = mean_std_ci([0.75, float("nan")])
    assert (mean, std) == (0.75, 0.0)
    assert math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in mean_std_ci([]))


def test_selection_strictly_highest_validation_ties_keep_earlier_null_never():
    df = pd.DataFrame(
        [attempt_row("fn_a", 20, 1, 1, None, 1.0, "syntax_error"),
         attempt_row("fn_a", 20, 1, 2, 0.9, 0.5),
         attempt_row("fn_a", 20, 1, 3, 0.9, 1.0),  # a tie on validation: the higher test must not matter
         attempt_row("fn_a", 20, 2, 1, None, None, "no_code"),
         attempt_row("fn_a", 20, 3, 1, 0.4, 0.3),
         attempt_row("fn_a", 20, 3, 2, 0.6, 0.2)]
    ).sample(frac=1.0, random_state=3)  # row order must not matter either
    df["selected"] = True
    out = select_attempts(df)
    chosen = sorted(out.loc[out["selected"], ["trial", "attempt"]].itertuples(index=False, name=None))
    assert chosen == [(1, 2), (3, 2)]  # trial 2 has no scored candidate: nothing selected
    assert list(out.index) == list(df.index)


def hand_built_ledger(run_dir):
    """Two cells; the expected figures below are worked out by hand from these rows."""
    rows = [
        # fn_a L20 trial 1: attempts 2 and 3 tie at 0.9, the earlier (test 0.8) is selected
        attempt_row("fn_a", 20, 1, 1, 0.5, 0.4),
        attempt_row("fn_a", 20, 1, 2, 0.9, 0.8),
        attempt_row("fn_a", 20, 1, 3, 0.9, 0.95),
        # trial 2: a syntax error, then validation 1.0 stops the trial early
        attempt_row("fn_a", 20, 2, 1, None, None, "syntax_error"),
        attempt_row("fn_a", 20, 2, 2, 1.0, 1.0, stopped_early=True),
        # trial 3: a failed call between two equal candidates: the first (test 0.6) is selected
        attempt_row("fn_a", 20, 3, 1, 0.6, 0.6),
        attempt_row("fn_a", 20, 3, 2, None, None, "propose_error", prompt_tokens=None, completion_tokens=None,
                    reasoning_tokens=None, cached_tokens=None, cost_usd=None),
        attempt_row("fn_a", 20, 3, 3, 0.6, 0.7),
        # fn_b L20: one trial, one answered but unpriced attempt, then one skipped for budget
        attempt_row("fn_b", 20, 1, 1, 0.7, 0.65, cost_usd=None),
        attempt_row("fn_b", 20, 1, 2, None, None, "skipped_budget", prompt_tokens=None, completion_tokens=None,
                    reasoning_tokens=None, cached_tokens=None, cost_usd=None),
    ]
    write_trials(run_dir, rows)
    return ledger.read_attempts(run_dir).to_pandas()


def test_summarize_cells_equals_hand_computed_values(tmp_path):
    cells = summarize_cells(hand_built_ledger(tmp_path)).set_index("target")
    a = cells.loc["fn_a"]
    assert (a["trials"], a["trials_scored"], a["attempts"], a["early_stops"]) == (3, 3, 8, 1)
    assert a["attempts_made_mean"] == pytest.approx((3 + 2 + 3) / 3)
    # selected test accuracies 0.8, 1.0, 0.6
    assert a["test_mean"] == pytest.approx(0.8)
    assert a["test_std"] == pytest.approx(math.sqrt(0.08 / 3))
    half = T_975_DF2 * math.sqrt(0.08 / 2) / math.sqrt(3)
    assert (a["test_ci_low"], a["test_ci_high"]) == pytest.approx((0.8 - half, 0.8 + half))
    # selected validation accuracies 0.9, 1.0, 0.6
    assert a["val_mean"] == pytest.approx(2.5 / 3)
    assert a["val_std"] == pytest.approx(math.sqrt(((0.9 - 2.5 / 3) ** 2 + (1 / 6) ** 2 + (0.6 - 2.5 / 3) ** 2) / 3))
    assert a["val_test_gap"] == pytest.approx(2.5 / 3 - 0.8)
    assert (a["n_ok"], a["n_syntax_error"], a["n_propose_error"], a["n_timeout"]) == (6, 1, 1, 0)
    assert (a["share_ok"], a["share_syntax_error"]) == pytest.approx((6 / 8, 1 / 8))
    assert (a["prompt_tokens"], a["completion_tokens"], a["cached_tokens"]) == (700, 350, 70)
    assert a["cost_usd"] == pytest.approx(0.07)
    assert a["unpriced_attempts"] == 0
    # pass@k of validation 1.0: trial 2 (n=2, c=1) gives 1/2 at k=1 and 1 from k=2; trials 1 and 3 give 0
    assert [a[f"val_pass_at_{k}"] for k in (1, 2, 3)] == pytest.approx([0.5 / 3, 1 / 3, 1 / 3])
    assert [a[f"test_pass_at_{k}"] for k in (1, 2, 3)] == pytest.approx([0.5 / 3, 1 / 3, 1 / 3])

    b = cells.loc["fn_b"]
    assert (b["trials"], b["trials_scored"], b["attempts"], b["attempts_made_mean"]) == (1, 1, 2, 1.0)
    assert (b["test_mean"], b["test_std"]) == pytest.approx((0.65, 0.0))
    assert math.isnan(b["test_ci_low"]) and math.isnan(b["test_ci_high"])  # one trial: undefined, not 0
    assert math.isnan(b["cost_usd"]) and b["unpriced_attempts"] == 1  # unpriced is never free
    assert b["share_skipped_budget"] == pytest.approx(0.5)
    assert [b[f"val_pass_at_{k}"] for k in (1, 2, 3)] == [0.0, 0.0, 0.0]


def test_a_selected_candidate_without_test_score_counts_as_wrong(tmp_path):
    write_trials(tmp_path, [attempt_row("fn_a", 20, 1, 1, 0.8, None, "timeout"),
                            attempt_row("fn_a", 20, 2, 1, 0.9, 0.9)])
    cells = summarize_cells(ledger.read_attempts(tmp_path).to_pandas())
    assert cells.loc[0, "test_mean"] == pytest.approx(0.45)


def test_a_cell_without_any_scored_trial_has_counts_but_no_accuracy(tmp_path):
    write_trials(tmp_path, [attempt_row("fn_a", 20, 1, 1, None, None, "no_code")])
    cell = summarize_cells(ledger.read_attempts(tmp_path).to_pandas()).iloc[0]
    assert (cell["trials"], cell["trials_scored"], cell["n_no_code"]) == (1, 0, 1)
    assert math.isnan(cell["test_mean"]) and math.isnan(cell["val_test_gap"])


def test_progression_is_the_selection_after_each_budget(tmp_path):
    progress = progression(hand_built_ledger(tmp_path))
    trial = progress[(progress["target"] == "fn_a") & (progress["trial"] == 1)]
    assert trial["best_val_acc"].tolist() == [0.5, 0.9, 0.9]
    assert trial["best_test_acc"].tolist() == [0.4, 0.8, 0.8]  # the tie keeps attempt 2's test score
    stopped = progress[(progress["target"] == "fn_a") & (progress["trial"] == 2)]
    assert math.isnan(stopped["best_val_acc"].iloc[0])
    assert stopped["best_test_acc"].tolist()[1:] == [1.0, 1.0]  # carried past the early stop

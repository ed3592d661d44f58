"""Selection and per-cell statistics over the attempt ledger (plain pandas, no Prefect).

Definitions used throughout:

- a cell is (method label, target, length); rows without a method are erm's (a run from before methods).
- selection: in each erm trial, the trial's selection rule (llm_erm.results.selection; the ERM default: the strictly
  highest validation accuracy, ties keep the earlier attempt; an attempt without a validation score is never
  selected). Test accuracy plays no part. A trained baseline's or icl's trial is one row, its own result.
- an erm trial is *scored* when at least one attempt has a validation score; another method's when its row
  has a test score. Cell statistics of the selected
  accuracies are taken over scored trials only. A selected attempt without a test score (it was not run
  on test, e.g. it timed out) counts as test accuracy 0: a timeout counts as wrong.
- mean and *population* std (ddof=0) over the scored trials; the 95% confidence interval of the mean is
  Student's t with n-1 degrees of freedom, mean +- t(0.975, n-1) * s / sqrt(n) with s the *sample* std
  (ddof=1). With one trial the interval is undefined (NaN), never zero.
- pass@k: the unbiased estimator 1 - C(n-c, k) / C(n, k) over the n attempts a trial made, averaged over
  trials. A trial that made n < k attempts (it stopped early at validation 1.0, or ran out of budget)
  contributes its pass@n: a bigger budget would have stopped at the same place. Attempts skipped for
  budget were never made and are not samples; trials with no attempt made are left out.
  Success is "validation accuracy == 1.0" (val_pass_at_k) or "test accuracy >= 0.99" (test_pass_at_k).
- cost: the sum of the priced attempts; `unpriced_attempts` counts attempts that got an answer without a
  price (unknown model), so a partial sum is never mistaken for the whole. NaN when none is priced.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd

from llm_erm.results.schema import SKIPPED_BUDGET, STATUSES, VERIFY_STATUSES
from llm_erm.results.selection import HighestValidation, get_rule

CELL_KEYS = ["method_label", "target", "length"]
TRIAL_KEYS = [*CELL_KEYS, "trial"]


def with_methods(df: pd.DataFrame) -> pd.DataFrame:
    """The rows with `method` and `method_label` filled (erm where a ledger predates methods)."""
    out = df.copy()
    for column in ("method", "method_label"):
        out[column] = out[column].fillna("erm") if column in out else "erm"
    return out
TEST_PASS = 0.99  # test accuracy that counts as "learned" for test_pass_at_k
TOKEN_COLUMNS = ["prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimator: the chance that k of n samples, c of them correct, hold a correct one."""
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@cache
def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom.

    Solves  P(T > t) = 0.025, i.e. I_{df/(df+t^2)}(df/2, 1/2) = 0.05 with the regularised incomplete
    beta function, by bisection (mpmath ships with sympy; scipy is not a dependency).
    """
    import mpmath

    def upper_two_tails_minus_alpha(t: float) -> float:
        return mpmath.betainc(df / 2, 0.5, 0, df / (df + t * t), regularized=True) - 0.05

    return float(mpmath.findroot(upper_two_tails_minus_alpha, (0.5, 200.0), solver="bisect"))


def mean_std_ci(values) -> tuple[float, float, float, float]:
    """(mean, population std, 95% CI low, 95% CI high) of the values; NaN where undefined (see module doc)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return (math.nan,) * 4
    mean, std = float(x.mean()), float(x.std(ddof=0))
    if n < 2:
        return mean, std, math.nan, math.nan
    half = t_quantile_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, std, mean - half, mean + half


def select_attempts(df: pd.DataFrame, rule: str | None = None) -> pd.DataFrame:
    """A copy of `df` with `selected` recomputed: each erm trial by its rule (`rule`, else the one the ledger
    records, else ERM's), each other method's trial keeping its one scored row. Original row order.

    The two common cases are vectorised (a baseline's trial; an erm trial under the ERM rule, the strictly
    highest validation accuracy with ties to the earlier attempt); trials under any other rule ask the rule.
    """
    df = with_methods(df)
    keys = (["run_id"] if "run_id" in df else []) + TRIAL_KEYS
    out = df.copy()
    if out.empty:
        out["selected"] = pd.Series(dtype=bool)
        return out
    group = out.groupby(keys, sort=False, dropna=False).ngroup()
    baseline = (out["method"] != "erm").groupby(group).transform("all")
    names = _rule_names(out, group, rule)
    chosen: list = []
    ok = baseline & out["test_acc"].notna() & (out["status"] == "ok")
    chosen += list(out[ok].groupby(group[ok], sort=False).head(1).index)
    fast = ~baseline & names.eq(HighestValidation.name) & out["val_acc"].notna()
    best = out[fast].sort_values(["val_acc", "attempt"], ascending=[False, True], kind="stable")
    chosen += list(best.groupby(group[best.index], sort=False).head(1).index)
    slow = ~baseline & ~names.eq(HighestValidation.name)
    for name, rows in out[slow].groupby([group[slow], names[slow]], sort=False):
        ordered = rows.sort_values("attempt", kind="stable")
        index = get_rule(name[1]).select(ordered.to_dict("records"))
        if index is not None:
            chosen.append(ordered.index[index])
    out["selected"] = out.index.isin(chosen)
    return out


def _rule_names(df: pd.DataFrame, group: pd.Series, rule: str | None) -> pd.Series:
    """The selection rule of each row's trial: `rule`, else the first one its rows record (in attempt order),
    else ERM's."""
    if rule is not None:
        return pd.Series(rule, index=df.index)
    if "selection_rule" not in df:
        return pd.Series(HighestValidation.name, index=df.index)
    ordered = df["selection_rule"].iloc[np.argsort(df["attempt"].to_numpy(), kind="stable")]
    first = ordered.groupby(group.loc[ordered.index], sort=False).first()  # first non-null per trial
    return group.map(first).fillna(HighestValidation.name).astype(str)


def _solved(df: pd.DataFrame, names: pd.Series) -> pd.Series:
    """Per row: its trial's selection rule calls it solved (the trial's early stop, and a pass on validation)."""
    solved = pd.Series(False, index=df.index)
    for name in names.unique():
        rows = df[names.eq(name)]
        rule = get_rule(name)
        solved[rows.index] = [bool(rule.solved(row)) for row in rows.to_dict("records")]
    return solved


def summarize_trials(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per (target, length, trial): attempts made, the selected attempt and its scores, successes."""
    df = select_attempts(attempts)
    df["made"] = df["status"] != SKIPPED_BUDGET
    df["scorable"] = df["val_acc"].notna() | ((df["method"] != "erm") & df["test_acc"].notna())
    df["val_success"] = df["made"] & _solved(df, _rule_names(df, df.groupby(TRIAL_KEYS, sort=False).ngroup(), None))
    df["test_success"] = df["made"] & (df["test_acc"] >= TEST_PASS)
    df["stopped_early"] = df["stopped_early"].eq(True)  # a nullable ledger column: null -> False
    chosen = df[df["selected"]].set_index(TRIAL_KEYS)

    grouped = df.groupby(TRIAL_KEYS, sort=True)
    trials = grouped.agg(
        method=("method", "first"),
        target_name=("target_name", "first"),
        attempts=("attempt", "size"),
        attempts_made=("made", "sum"),
        scored=("scorable", "any"),
        stopped_early=("stopped_early", "any"),
        val_successes=("val_success", "sum"),
        test_successes=("test_success", "sum"),
    )
    trials["selected_attempt"] = chosen["attempt"].reindex(trials.index).astype("Int64")
    trials["selected_val_acc"] = chosen["val_acc"].reindex(trials.index)
    # A selected candidate that has no test score was not run on test (timeout): it counts as wrong.
    trials["selected_test_acc"] = chosen["test_acc"].reindex(trials.index).fillna(0.0).where(trials["scored"])
    return trials.reset_index()


def _mean_pass_at_k(made, successes, k: int) -> float:
    """pass@k averaged over trials; a trial of n < k attempts gives pass@n, one of 0 attempts is left out."""
    values = [pass_at_k(n, c, min(k, n)) for n, c in zip(made, successes, strict=True) if n > 0]
    return float(np.mean(values)) if values else math.nan


def pass_at_k_table(trials: pd.DataFrame, max_k: int) -> pd.DataFrame:
    """Long table (target, length, k, val_pass_at_k, test_pass_at_k), each averaged over the cell's trials."""
    rows = []
    for (label, target, length), cell in trials.groupby(CELL_KEYS, sort=True):
        made = cell["attempts_made"].astype(int).tolist()
        val_successes = cell["val_successes"].astype(int).tolist()
        test_successes = cell["test_successes"].astype(int).tolist()
        for k in range(1, max_k + 1):
            rows.append(
                {
                    "method_label": label,
                    "target": target,
                    "length": length,
                    "k": k,
                    "val_pass_at_k": _mean_pass_at_k(made, val_successes, k),
                    "test_pass_at_k": _mean_pass_at_k(made, test_successes, k),
                }
            )
    return pd.DataFrame(rows, columns=[*CELL_KEYS, "k", "val_pass_at_k", "test_pass_at_k"])


def _selected_accuracy(trials: pd.DataFrame) -> pd.DataFrame:
    """Per cell: mean, population std and 95% CI of the selected test accuracy, mean and std of validation."""
    rows = {}
    for key, cell in trials[trials["scored"]].groupby(CELL_KEYS, sort=True):
        test_mean, test_std, test_low, test_high = mean_std_ci(cell["selected_test_acc"])
        val_mean, val_std, _, _ = mean_std_ci(cell["selected_val_acc"])
        rows[key] = {
            "test_mean": test_mean, "test_std": test_std, "test_ci_low": test_low, "test_ci_high": test_high,
            "val_mean": val_mean, "val_std": val_std, "val_test_gap": val_mean - test_mean,
        }
    columns = ["test_mean", "test_std", "test_ci_low", "test_ci_high", "val_mean", "val_std", "val_test_gap"]
    index = pd.MultiIndex.from_tuples(list(rows), names=CELL_KEYS)
    return pd.DataFrame(list(rows.values()), index=index, columns=columns)


def summarize_cells(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (method label, target, length): counts, status shares, selected accuracies, tokens,
    cost, pass@k (erm), truncated answers, and whether a selected program hit a limit on test."""
    if attempts.empty:
        return pd.DataFrame()
    attempts = with_methods(attempts)
    trials = summarize_trials(attempts)
    df = attempts.assign(
        answered_unpriced=attempts["status"].isin(VERIFY_STATUSES) & attempts["cost_usd"].isna(),
        **{column: attempts[column].fillna(0).astype("int64") for column in TOKEN_COLUMNS},
    )
    for column in ("truncated", "n_train", "limit_split", "tools"):
        if column not in df:
            df[column] = None
    df["truncated"] = df["truncated"].eq(True)
    selected = select_attempts(attempts)["selected"]
    df["selected_limit_on_test"] = selected & df["limit_split"].eq("test")
    usage = df.groupby(CELL_KEYS, sort=True).agg(
        method=("method", "first"),
        target_name=("target_name", "first"),
        n_train=("n_train", "max"),
        attempts=("attempt", "size"),
        truncated_answers=("truncated", "sum"),
        tools=("tools", lambda v: next((t for t in v if isinstance(t, str) and t), None)),
        selected_limit_on_test=("selected_limit_on_test", "sum"),
        **{column: (column, "sum") for column in TOKEN_COLUMNS},
        cost_usd=("cost_usd", lambda cost: cost.sum(min_count=1)),  # NaN when nothing is priced
        unpriced_attempts=("answered_unpriced", "sum"),
    )
    counts = trials.groupby(CELL_KEYS, sort=True).agg(
        trials=("trial", "size"),
        trials_scored=("scored", "sum"),
        attempts_made_mean=("attempts_made", "mean"),
        early_stops=("stopped_early", "sum"),
    )
    statuses = (
        pd.crosstab([df[k] for k in CELL_KEYS], df["status"]).reindex(columns=list(STATUSES), fill_value=0)
    )
    shares = statuses.div(statuses.sum(axis=1), axis=0)
    head = ["method", "target_name", "n_train", "attempts"]
    cells = (
        usage[head]
        .join(counts)
        .join(_selected_accuracy(trials))
        .join(usage.drop(columns=head))
        .join(statuses.add_prefix("n_"))
        .join(shares.add_prefix("share_"))
    )
    curves = pass_at_k_table(trials, int(attempts["attempt"].max()))
    for metric in ("val", "test"):
        wide = curves.pivot(index=CELL_KEYS, columns="k", values=f"{metric}_pass_at_k")
        cells = cells.join(wide.rename(columns=lambda k, m=metric: f"{m}_pass_at_{k}"))
    cells = cells.reset_index()
    first = ["method_label", "method", "target", "target_name", "length"]
    return cells[[*first, *cells.columns.drop(first)]]


def progression(attempts: pd.DataFrame) -> pd.DataFrame:
    """Per trial and attempt a = 1..K: validation and test accuracy of the attempt that the trial's selection
    rule (the one its rows record, else ERM's) chooses among attempts 1..a.

    This is what a budget of a attempts would have returned. A trial that ended before K (early stop,
    budget) carries its final selection forward, as a bigger budget would have stopped there too.
    """
    attempts = with_methods(attempts)
    max_k = int(attempts["attempt"].max()) if len(attempts) else 0
    rows = []
    ordered = attempts.sort_values([*TRIAL_KEYS, "attempt"], kind="stable")
    names = _rule_names(ordered, ordered.groupby(TRIAL_KEYS, sort=False).ngroup(), None)
    for (label, target, length, trial), group in ordered.groupby(TRIAL_KEYS, sort=True):
        rule = get_rule(names[group.index[0]])
        records = group.to_dict("records")
        best_val, best_test = math.nan, math.nan
        for a in range(1, max_k + 1):
            seen = [r for r in records if r["attempt"] <= a]
            index = rule.select(seen)
            if index is not None:
                test = seen[index]["test_acc"]
                # a selected candidate without a test score was not run on test (timeout): it counts as wrong
                best_val, best_test = seen[index]["val_acc"], 0.0 if test is None or test != test else test
            rows.append(
                {"method_label": label, "target": target, "length": length, "trial": trial, "attempt": a,
                 "best_val_acc": best_val, "best_test_acc": best_test}
            )
    return pd.DataFrame(
        rows, columns=[*TRIAL_KEYS, "attempt", "best_val_acc", "best_test_acc"]
    )

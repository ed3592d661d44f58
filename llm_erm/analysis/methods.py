"""Results per method: the methods axis of a grid (targets x lengths x methods x trials), read from the ledger.

Every attempt row may carry `method` (erm, icl, sgd, xgboost ...), `method_label` (unique per grid, e.g.
"erm-gpt-5-mini", "sgd-n1000") and `n_train` (samples trained on). They are optional: a ledger without
them is an erm-only run whose label is "erm".

How a trial's result is read:
- a *search* method (erm) makes several attempts and selects one by validation (stats.select_attempts);
- every other method writes ONE row per trial (attempt 1, val_acc null): that row is the trial's result,
  and it is scored when it has a test accuracy.
Cell statistics are those of stats.py (mean, population std, Student-t 95% CI over scored trials).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from llm_erm.analysis.stats import CELL_KEYS, mean_std_ci, summarize_trials

SEARCH_METHODS = frozenset({"erm"})
DEFAULT_METHOD = "erm"
METHOD_KEYS = ["method_label", *CELL_KEYS]
METHOD_TRIAL_KEYS = [*METHOD_KEYS, "trial"]


def with_methods(attempts: pd.DataFrame) -> pd.DataFrame:
    """A copy of the rows with `method`, `method_label` and `n_train` filled in where the ledger lacks them."""
    df = attempts.copy()
    if "method" not in df:
        df["method"] = DEFAULT_METHOD
    df["method"] = df["method"].fillna(DEFAULT_METHOD).astype(str)
    if "method_label" not in df:
        df["method_label"] = df["method"]
    df["method_label"] = df["method_label"].fillna(df["method"]).astype(str)
    if "n_train" not in df:
        df["n_train"] = pd.NA
    df["n_train"] = pd.to_numeric(df["n_train"], errors="coerce").astype("Int64")
    return df


def labels(attempts: pd.DataFrame) -> list[str]:
    """Method labels of the run: search (erm) labels first, then the others, each group sorted."""
    df = with_methods(attempts)
    pairs = df[["method_label", "method"]].drop_duplicates().itertuples(index=False)
    return [label for label, method in sorted(pairs, key=lambda p: (p[1] not in SEARCH_METHODS, p[0]))]


def method_of(attempts: pd.DataFrame) -> dict[str, str]:
    df = with_methods(attempts)
    return dict(df[["method_label", "method"]].drop_duplicates().itertuples(index=False))


def primary_search_label(attempts: pd.DataFrame) -> str | None:
    """The label the single-method (ERM) sections of the report describe: "erm" if present, else the first
    search label; None when the run has no search method."""
    df = with_methods(attempts)
    search = sorted(df.loc[df["method"].isin(SEARCH_METHODS), "method_label"].unique())
    if not search:
        return None
    return DEFAULT_METHOD if DEFAULT_METHOD in search else search[0]


def as_selectable(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of one label in the form the ERM statistics (summarize_trials, compare) read.

    A one-row method has no validation score, so the ERM selection would pass its trial over; here its scored
    row gets a stand-in validation score (its train accuracy, else 0) so that the row is "selected", which is
    what the trial's result is. Search methods are returned unchanged.
    """
    method = rows["method"].iloc[0] if "method" in rows and len(rows) else DEFAULT_METHOD
    if method in SEARCH_METHODS:
        return rows
    out = rows.copy()
    scored = out["val_acc"].isna() & out["test_acc"].notna()
    stand_in = out["train_acc"] if "train_acc" in out else pd.Series(0.0, index=out.index)
    out.loc[scored, "val_acc"] = stand_in[scored].fillna(0.0)
    return out


def method_trials(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per (method_label, target, length, trial): method, n_train, attempts, scored, the selected
    attempt and its validation and test accuracy (validation is null for one-row methods)."""
    df = with_methods(attempts)
    frames = []
    for label, rows in df.groupby("method_label", sort=True):
        method = str(rows["method"].iloc[0])
        trials = summarize_trials(as_selectable(rows))
        if method not in SEARCH_METHODS:
            trials["selected_val_acc"] = math.nan
        n_train = rows.groupby(["target", "length", "trial"])["n_train"].first()
        trials["n_train"] = n_train.reindex(pd.MultiIndex.from_frame(trials[["target", "length", "trial"]])).to_numpy()
        trials.insert(0, "method", method)
        trials.insert(0, "method_label", label)
        frames.append(trials)
    if not frames:
        return pd.DataFrame(columns=[*METHOD_TRIAL_KEYS, "method", "scored", "selected_test_acc"])
    out = pd.concat(frames, ignore_index=True)
    out["n_train"] = pd.to_numeric(out["n_train"], errors="coerce").astype("Int64")
    return out


def method_cells(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (method_label, target, length): trials, scored trials, n_train and the selected test
    accuracy's mean, population std and 95% CI over the scored trials."""
    rows = []
    for (label, target, length), cell in trials.groupby(METHOD_KEYS, sort=True):
        scored = cell[cell["scored"]]
        mean, std, low, high = mean_std_ci(scored["selected_test_acc"])
        n_train = cell["n_train"].dropna().unique()
        rows.append({
            "method_label": label, "method": cell["method"].iloc[0], "target": target, "length": int(length),
            "target_name": cell["target_name"].iloc[0] if "target_name" in cell else None,
            "n_train": int(n_train[0]) if len(n_train) == 1 else (int(n_train.max()) if len(n_train) else None),
            "trials": len(cell), "trials_scored": int(cell["scored"].sum()),
            "test_mean": mean, "test_std": std, "test_ci_low": low, "test_ci_high": high,
        })
    columns = ["method_label", "method", "target", "target_name", "length", "n_train", "trials", "trials_scored",
               "test_mean", "test_std", "test_ci_low", "test_ci_high"]
    return pd.DataFrame(rows, columns=columns)


def sample_size_series(cells: pd.DataFrame) -> dict[str, list[str]]:
    """Curves of accuracy against sample size: {series name: labels}.

    The labels of one method whose n_train values differ form one curve named after the method (a sweep,
    e.g. sgd-n200, sgd-n1000); labels that share a method and an n_train (two models of erm) are a curve each.
    Labels without n_train are left out.
    """
    known = cells.dropna(subset=["n_train"])
    series: dict[str, list[str]] = {}
    for method, group in known.groupby("method", sort=True):
        per_label = group.groupby("method_label")["n_train"].max()
        if per_label.nunique() == len(per_label):
            series[method] = sorted(per_label.index)
        else:
            for label in sorted(per_label.index):
                series[label] = [label]
    return series


def parse_extra(value: Any) -> Any:
    """A JSON column (method_extra, proposal_extra) as data; the text itself when it is not JSON."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value

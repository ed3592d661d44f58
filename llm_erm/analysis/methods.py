"""The methods axis in the report and the viewer: which labels a run has, per-cell results from trials, and
which labels form a curve against sample size.

A grid is targets x lengths x methods x trials; every row carries `method` (erm, icl, sgd, xgboost ...) and
`method_label` (unique per grid: "erm", "erm-gpt-5-mini", "sgd-n1000"); stats.with_methods fills both for a
ledger from before methods. Trial results and their selection are stats.summarize_trials'.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from llm_erm.analysis.stats import CELL_KEYS, mean_std_ci, with_methods

SEARCH_METHODS = frozenset({"erm"})  # methods that make several attempts and select one
MODEL_METHODS = frozenset({"erm", "icl"})  # methods whose calls are priced; the others cost nothing


def labels(frame: pd.DataFrame) -> list[str]:
    """The method labels of a frame of rows or cells: search (erm) labels first, then the others, each sorted."""
    if frame.empty:
        return []
    df = with_methods(frame)
    pairs = df[["method_label", "method"]].drop_duplicates().itertuples(index=False)
    return [label for label, method in sorted(pairs, key=lambda p: (p[1] not in SEARCH_METHODS, p[0]))]


def search_labels(frame: pd.DataFrame) -> list[str]:
    df = with_methods(frame)
    return sorted(df.loc[df["method"].isin(SEARCH_METHODS), "method_label"].unique())


def method_cells(trials: pd.DataFrame, attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per (method_label, target, length) from stats.summarize_trials' trials: method, target name,
    n_train, trials, scored trials, and the selected test accuracy's mean, population std and 95% CI over the
    scored trials. (stats.summarize_cells has these and much more; this is the cheap subset the viewer redraws.)"""
    columns = [*CELL_KEYS, "method", "target_name", "n_train", "trials", "trials_scored",
               "test_mean", "test_std", "test_ci_low", "test_ci_high"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    n_train = (with_methods(attempts).groupby(CELL_KEYS)["n_train"].max() if "n_train" in attempts
               else pd.Series(dtype=float))
    rows = []
    for key, cell in trials.groupby(CELL_KEYS, sort=True):
        mean, std, low, high = mean_std_ci(cell.loc[cell["scored"], "selected_test_acc"])
        size = n_train.get(key) if len(n_train) else None
        rows.append({
            "method_label": key[0], "target": key[1], "length": int(key[2]), "method": cell["method"].iloc[0],
            "target_name": cell["target_name"].iloc[0],
            "n_train": None if size is None or pd.isna(size) else int(size),
            "trials": len(cell), "trials_scored": int(cell["scored"].sum()),
            "test_mean": mean, "test_std": std, "test_ci_low": low, "test_ci_high": high,
        })
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

"""stats.select_attempts' vectorised paths choose exactly what asking each trial's rule chooses."""

import random

import pandas as pd
import pytest

from llm_erm.analysis.stats import TRIAL_KEYS, select_attempts, with_methods
from llm_erm.results.selection import get_rule


def by_rules(df: pd.DataFrame, rule: str | None = None) -> pd.Series:
    """The reference: every trial's rows handed to its rule (a baseline keeps its first ok row with a test score)."""
    df = with_methods(df)
    keys = (["run_id"] if "run_id" in df else []) + TRIAL_KEYS
    chosen = []
    for _, group in df.groupby(keys, sort=False, dropna=False):
        if (group["method"] != "erm").all():
            chosen += list(group.index[group["test_acc"].notna() & (group["status"] == "ok")][:1])
            continue
        ordered = group.sort_values("attempt", kind="stable")
        recorded = ordered["selection_rule"].dropna() if "selection_rule" in ordered else []
        name = rule or (recorded.iloc[0] if len(recorded) else "erm")
        index = get_rule(name).select(ordered.to_dict("records"))
        if index is not None:
            chosen.append(ordered.index[index])
    return df.index.isin(chosen)


def random_ledger(seed: int, with_rule_column: bool = True) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for label, method in (("erm", "erm"), ("erm-mini", "erm"), ("xgboost", "xgboost")):
        for target in ("fn_a", "fn_b"):
            for trial in range(1, 6):
                rule = rng.choice(["erm", "erm", "shortest", None])
                attempts = list(range(1, (1 if method != "erm" else rng.randint(1, 6)) + 1))
                rng.shuffle(attempts)  # files need not be in attempt order
                for attempt in attempts:
                    val = rng.choice([None, 0.5, 0.75, 0.75, 1.0]) if method == "erm" else None
                    row = {"run_id": "r", "method": method, "method_label": label, "target": target, "length": 20,
                           "trial": trial, "attempt": attempt, "val_acc": val,
                           "test_acc": rng.choice([None, 0.6, 0.9]), "status": rng.choice(["ok", "ok", "timeout"]),
                           "ast_nodes": rng.randint(5, 9)}
                    if with_rule_column:
                        row["selection_rule"] = rule if method == "erm" else None
                    rows.append(row)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(8))
def test_the_fast_selection_equals_asking_every_rule(seed):
    df = random_ledger(seed)
    assert (select_attempts(df)["selected"].to_numpy() == by_rules(df)).all()
    for rule in ("erm", "shortest"):
        assert (select_attempts(df, rule)["selected"].to_numpy() == by_rules(df, rule)).all()


def test_ledgers_without_rule_or_method_columns_select_by_erm():
    df = random_ledger(3, with_rule_column=False)
    assert (select_attempts(df)["selected"].to_numpy() == by_rules(df)).all()
    erm_only = df[df["method"] == "erm"].drop(columns=["method", "method_label"])
    assert (select_attempts(erm_only)["selected"].to_numpy() == by_rules(erm_only)).all()
    assert select_attempts(df.iloc[:0])["selected"].empty

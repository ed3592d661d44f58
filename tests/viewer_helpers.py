"""Hand-built multi-method ledgers (the methods axis: method, method_label, n_train, method_extra, limit_split).

Trial files go where the methods axis puts them, attempts/<method_label>/<target>/L<length>/trial<t>.parquet.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from analysis_helpers import attempt_row, clean_store

from llm_erm.results import ledger

PROMPT = "**Problem Statement:**\nGiven a sequence of input vectors (binary, length {L}) ...\n0101 -> 0\n"


def method_trial_path(run_dir: Path, label: str, target: str, length: int, trial: int) -> Path:
    return ledger.trial_path(run_dir, label, target, length, trial)


def write_method_trial(run_dir: Path, label: str, target: str, length: int, trial: int,
                       rows: list[dict[str, Any]]) -> Path:
    """One trial file of the methods layout; `selected`/`stopped_early` set as the grid sets them for erm."""
    rows = [dict(r) for r in rows]
    scored = [r for r in rows if r.get("val_acc") is not None]
    best = max(scored, key=lambda r: (r["val_acc"], -r["attempt"])) if scored else None
    for r in rows:
        r.setdefault("method", "erm")
        r.setdefault("method_label", label)
        r.setdefault("selected", r is best if r["method"] == "erm" else r.get("status") == "ok")
        r.setdefault("stopped_early", r.get("val_acc") == 1.0 and r is rows[-1])
    return ledger.write_trial(run_dir, label, target, length, trial, rows)


def erm_rows(target: str, length: int, trial: int, attempts: int, rng: random.Random, store: Path,
             label: str = "erm", n_train: int = 200, test_shift: float = 0.0) -> list[dict[str, Any]]:
    rows = []
    for attempt in range(1, attempts + 1):
        status = rng.choice(["ok", "ok", "ok", "syntax_error", "runtime_errors", "timeout"])
        val = None if status == "syntax_error" else round(rng.uniform(0.5, 0.99), 2)
        test = None if val is None else max(0.0, round(val - rng.uniform(0, 0.08) - test_shift, 3))
        signature = None if val is None else f"sig-{target}-{length}-{int(val * 10)}"
        code = (f"def f(x):\n    # attempt {attempt}\n    return int(x.count('1') % 2 == {attempt % 2})  # t{trial}\n"
                if status != "syntax_error" else None)
        rows.append(attempt_row(
            target, length, trial, attempt, val, test, status, dataset_path=str(store), code=code,
            text=json.dumps({"code": code or "def f(x) return 1"}), prompt=PROMPT.format(L=length),
            method="erm", method_label=label, n_train=n_train, latency_s=1.5 + attempt,
            first_error="SyntaxError: invalid syntax (line 1)" if status == "syntax_error" else None,
            signature=signature, truncated=status == "runtime_errors" and attempt == 2,
            finish_reason="length" if status == "runtime_errors" and attempt == 2 else "stop",
        ))
    return rows


def baseline_row(method: str, label: str, target: str, length: int, trial: int, rng: random.Random, store: Path,
                 n_train: int) -> dict[str, Any]:
    train = round(rng.uniform(0.8, 1.0), 3)
    test = round(rng.uniform(0.45, 0.7), 3)
    curve = [{"epoch": e, "train_acc": round(train * e / 3, 3), "test_acc": round(test * e / 3, 3), "loss": round(1 / e, 3)}
             for e in (1, 2, 3)]
    return attempt_row(
        target, length, trial, 1, None, test, "ok", dataset_path=str(store), code=None, cost_usd=None,
        prompt_tokens=None, completion_tokens=None, reasoning_tokens=None, cached_tokens=None, proposer=None,
        model=None, train_acc=train, method=method, method_label=label, n_train=n_train,
        method_extra=json.dumps({"curve": curve, "settings": {"n_estimators": 50}, "seconds": 0.4, "n_params": 1234}),
    )


def multi_method_run(run_dir: Path, datasets_dir: Path, *, targets=("fn_a", "fn_b"), lengths=(20, 24), trials=2,
                     attempts=3, seed=3, baselines=(("xgboost", "xgboost", 200), ("sgd", "sgd-n200", 200),
                                                    ("sgd", "sgd-n1000", 1000)),
                     test_shift: float = 0.0) -> Path:
    """A finished run with erm and one-row baselines over clean dataset stores."""
    rng = random.Random(seed)
    cells = []
    for t_index, target in enumerate(targets):
        for length in lengths:
            store, _ = clean_store(datasets_dir / target / f"L{length}", length=length, seed=t_index * 100 + length)
            for label, method in (("erm", "erm"), *((lbl, m) for m, lbl, _ in baselines)):
                cells.append({"method_label": label, "method": method, "target": target, "length": length,
                              "dataset_id": f"ds-{target}-{length}"})
            for trial in range(1, trials + 1):
                write_method_trial(run_dir, "erm", target, length, trial,
                                   erm_rows(target, length, trial, attempts, rng, store, test_shift=test_shift))
                for method, label, n_train in baselines:
                    write_method_trial(run_dir, label, target, length, trial,
                                       [baseline_row(method, label, target, length, trial, rng, store, n_train)])
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {
        "run_id": run_dir.name, "sandbox": "bwrap", "cells": cells, "trials_per_cell": trials,
        "created_at": "2026-01-02T03:04:05+00:00", "updated_at": "2026-01-02T04:05:06+00:00",
        "config": {"attempts": attempts, "trials": trials},
        "prefect": {"api_url": "http://127.0.0.1:4200/api", "ui_url": "http://127.0.0.1:4200",
                    "flow_run_id": "0b8f5c1e-1111-2222-3333-444455556666"},
    })
    return run_dir

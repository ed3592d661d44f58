"""The ledger, selection, budget, progress and export: plain Python, no Prefect."""

import csv
import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llm_erm.config import GridConfig
from llm_erm.results import ledger
from llm_erm.results.export import ORIGINAL_COLUMNS, write_export
from llm_erm.results.progress import cell_statuses, pending, running_marker, trial_done
from llm_erm.results.rows import attempt_row, finish_trial
from llm_erm.results.selection import select_index

IDENTITY = {"run_id": "r1", "target": "fn_a", "target_name": "parity_all", "length": 20, "trial": 1}


def proposal(text="def f(x): return 0", cost=0.01):
    usage = {"prompt_tokens": 100, "completion_tokens": 50, "reasoning_tokens": 20, "cached_tokens": 10}
    return {"text": text, "usage": usage, "latency_s": 1.5, "model": "gpt-5-x", "cost_usd": cost}


def verdict(val, test, status="ok"):
    return {"status": status, "val_acc": val, "test_acc": test, "train_acc": val, "code": "def f(x): return 0"}


def test_selection_is_strictly_best_validation_earliest_tie_and_never_unscored():
    assert select_index([0.5, 0.9, 0.9, 0.7]) == 1
    assert select_index([None, 0.1]) == 1
    assert select_index([None, None]) is None
    assert select_index([]) is None
    assert select_index([0.0, None]) == 0


def test_finish_trial_selects_by_validation_not_test_and_marks_early_stop():
    rows = [
        attempt_row(identity=IDENTITY, attempt=1, proposal=proposal(), verdict=verdict(0.6, 0.99)),
        attempt_row(identity=IDENTITY, attempt=2, propose_error="PermanentProposerError: 401"),
        attempt_row(identity=IDENTITY, attempt=3, proposal=proposal(), verdict=verdict(1.0, 0.4)),
    ]
    done = finish_trial(rows, attempts_planned=5)
    assert [r["selected"] for r in done] == [False, False, True]  # best test (0.99) is NOT selected
    assert {r["selection_rule"] for r in done} == {"erm"}
    assert [r["stopped_early"] for r in done] == [False, False, True]
    assert done[1]["status"] == "propose_error" and done[1].get("val_acc") is None
    # the same trial when attempt 3 was the last planned one did not stop early
    assert [r["stopped_early"] for r in finish_trial(rows, attempts_planned=3)] == [False, False, False]


def test_attempt_row_carries_usage_and_cost():
    row = attempt_row(identity=IDENTITY, attempt=1, proposal=proposal(cost=None), verdict=verdict(0.5, 0.5))
    assert row["cached_tokens"] == 10 and row["reasoning_tokens"] == 20 and row["cost_usd"] is None
    assert row["response_model"] == "gpt-5-x" and row["attempt"] == 1 and row["status"] == "ok"


def _write(run_dir: Path, target: str, length: int, trial: int, statuses: list[str], cost=0.5):
    rows = []
    for i, status in enumerate(statuses, start=1):
        ident = {**IDENTITY, "target": target, "length": length, "trial": trial}
        if status == "skipped_budget":
            rows.append(attempt_row(identity=ident, attempt=i, skipped=True))
        else:
            rows.append(attempt_row(identity=ident, attempt=i, proposal=proposal(cost=cost), verdict=verdict(0.5, 0.5, status)))
    return ledger.write_trial(run_dir, "erm", target, length, trial, finish_trial(rows, len(statuses)))


def test_ledger_round_trip_and_resume_scan(tmp_path):
    path = _write(tmp_path, "fn_a", 20, 1, ["ok", "syntax_error"])
    _write(tmp_path, "fn_a", 20, 2, ["ok", "skipped_budget"])
    assert ledger.finished_trials(tmp_path) == {("erm", "fn_a", 20, 1), ("erm", "fn_a", 20, 2)}
    assert trial_done(tmp_path, "erm", "fn_a", 20, 1) and not trial_done(tmp_path, "erm", "fn_a", 20, 2)
    table = ledger.read_attempts(tmp_path)
    assert table.num_rows == 4 and table.schema.names[:8] == ["run_id", "method", "method_label", "target", "target_name", "length", "trial", "attempt"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temp files left behind
    assert pq.read_table(path).num_rows == 2


def test_pending_trials_and_cell_states(tmp_path):
    class Spec:  # a cell
        def __init__(self, target, length):
            self.target, self.length = target, length

    specs = [Spec("fn_a", 20), Spec("fn_b", 20), Spec("fn_c", 20), Spec("fn_d", 20), Spec("fn_e", 20)]
    _write(tmp_path, "fn_a", 20, 1, ["ok"])
    _write(tmp_path, "fn_a", 20, 2, ["ok"])
    _write(tmp_path, "fn_b", 20, 1, ["ok"])
    _write(tmp_path, "fn_c", 20, 1, ["propose_error", "propose_error"])
    _write(tmp_path, "fn_d", 20, 1, ["ok", "skipped_budget"])
    left = {(target, t) for _, target, _, t in pending(tmp_path, [("erm", s.target, s.length, t) for s in specs
                                                                 for t in (1, 2)])}
    # a trial whose calls failed is pending like one skipped for budget: a re-run makes those calls again
    assert left == {("fn_b", 2), ("fn_c", 1), ("fn_c", 2), ("fn_d", 1), ("fn_d", 2), ("fn_e", 1), ("fn_e", 2)}
    ledger.write_json(tmp_path / "manifest.json", {"trials_per_cell": 2, "cells": [
        {"target": s.target, "length": s.length} for s in specs]})
    with running_marker(tmp_path, "erm", "fn_e", 20, 1):
        states = {c.target: c.state for c in cell_statuses(tmp_path)}
    assert states == {"fn_a": "done", "fn_b": "partial", "fn_c": "failed", "fn_d": "skipped_budget", "fn_e": "running"}
    assert {c.target: c.failed_attempts for c in cell_statuses(tmp_path)}["fn_c"] == 2
    assert {c.target: c.state for c in cell_statuses(tmp_path)}["fn_e"] == "missing"  # marker gone


def test_a_marker_left_by_a_dead_process_is_not_running(tmp_path):
    marker = ledger.trial_path(tmp_path, "erm", "fn_a", 20, 1).with_suffix(".running")
    marker.parent.mkdir(parents=True)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    import platform

    marker.write_text(f"{platform.node()} {dead}")
    ledger.write_json(tmp_path / "manifest.json", {"trials_per_cell": 1, "cells": [{"target": "fn_a", "length": 20}]})
    assert cell_statuses(tmp_path)[0].state == "missing"


def test_export_has_the_original_columns_first(tmp_path):
    _write(tmp_path, "fn_b", 30, 1, ["ok", "syntax_error"])
    out = tmp_path / "x.jsonl"
    assert write_export(tmp_path, "jsonl", out) == 2
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert list(rows[0])[: len(ORIGINAL_COLUMNS)] == list(ORIGINAL_COLUMNS)
    assert rows[0]["fn"] == "fn_b" and rows[0]["duration_ms"] == 1500.0 and rows[0]["compile_error"] is None
    assert {"trial", "status", "code", "selected", "cost_usd"} <= set(rows[0])
    csv_out = tmp_path / "x.csv"
    write_export(tmp_path, "csv", csv_out)
    with open(csv_out) as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["ok", "syntax_error"]


def test_default_run_id_is_a_hash_of_what_is_computed():
    a = GridConfig(functions=["fn_a"], lengths=[20], proposer="enumerate")
    assert a.resolved_run_id() == GridConfig(functions=["fn_a"], lengths=[20], proposer="enumerate",
                                             concurrency=16, results_dir="elsewhere").resolved_run_id()
    assert a.resolved_run_id() != GridConfig(functions=["fn_a"], lengths=[20], proposer="enumerate",
                                             attempts=3).resolved_run_id()
    assert GridConfig(run_id="mine").resolved_run_id() == "mine"
    with pytest.raises(ValueError):
        GridConfig(run_id="a/b")


def test_the_shortest_rule_breaks_validation_ties_by_program_size_and_never_sees_test():
    from llm_erm.results.selection import get_rule

    rows = [{"attempt": 1, "val_acc": 0.9, "ast_nodes": 40, "test_acc": 1.0},
            {"attempt": 2, "val_acc": 0.95, "ast_nodes": 30, "test_acc": 0.1},
            {"attempt": 3, "val_acc": 0.95, "ast_nodes": 12, "test_acc": 0.2},
            {"attempt": 4, "val_acc": 0.95, "ast_nodes": 12, "test_acc": 0.9},
            {"attempt": 5, "val_acc": None, "ast_nodes": 1}]
    assert get_rule("erm").select(rows) == 1
    assert get_rule("shortest").select(rows) == 2  # smallest of the best, the earlier of two equal sizes
    flipped = [{**r, "test_acc": 1 - (r.get("test_acc") or 0)} for r in rows]
    assert get_rule("shortest").select(flipped) == 2 and get_rule("erm").select(flipped) == 1
    assert get_rule("shortest").select([{"val_acc": None}]) is None
    done = finish_trial(rows[:4], 5, "shortest")
    assert [r["selected"] for r in done] == [False, False, True, False]
    with pytest.raises(Exception, match="unknown selection rule"):
        get_rule("best-test")

"""`llm-erm run/status/export` refuse bad input with one line, exit 2 and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_erm.results import ledger
from llm_erm.results.rows import attempt_row, finish_trial

LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))


def llm_erm(cwd: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    return subprocess.run([LLM_ERM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "key", "says"),
    [
        (["--functions", "fn_zz"], None, "fn_zz"),
        (["--functions", "fn_h", "--lengths", "30"], None, "divisible by 4"),
        (["--functions", "fn_a", "--lengths", "20", "--train-size", "99"], None, "even"),
        (["--functions", "fn_a", "--lengths", "20", "--proposer", "openai-responses"], None, "OPENAI_API_KEY"),
        (["--functions", "fn_a", "--lengths", "20", "--proposer", "openai-responses"], "sk bad key", "OPENAI_API_KEY"),
        (["--functions", "fn_a", "--lengths", "20", "--proposer", "replay", "--replay-from", "nope.jsonl"], None, "nope.jsonl"),
        (["--functions", "fn_a", "--lengths", "20", "--prompt-template", "missing.txt"], None, "missing.txt"),
        (["--functions", "fn_a", "--lengths", "20", "--prompt-variant", "poem"], None, "poem"),
        (["--functions", "nosuchmodule:f", "--lengths", "20"], None, "nosuchmodule"),
        (["--functions", "fn_a", "--lengths", "abc"], None, "--lengths"),
        (["--functions", "fn_a", "--attempts", "0"], None, "--attempts"),
        (["--functions", "fn_a", "--proposer", "openai-chat", "--base-url", "not-a-url"], None, "not an http(s) URL"),
        (["--functions", "fn_a", "--proposer", "openai-chat", "--base-url", "http://127.0.0.1:9/v1"], None,
         "does not answer"),
        (["--functions", "fn_a", "--proposer", "nope"], None, "unknown proposer 'nope'"),
        (["--functions", "fn_a", "--frobnicate"], None, "No such option"),
        (["--config", "missing.json"], None, "missing.json"),
    ],
)
def test_run_refuses_bad_input_before_writing_anything(tmp_path, args, key, says):
    done = llm_erm(tmp_path, "run", *args, key=key)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    assert list(tmp_path.iterdir()) == []


def test_status_and_export_of_a_ledger(tmp_path):
    run_dir = tmp_path / "results" / "r1"
    identity = {"run_id": "r1", "target": "fn_a", "target_name": "parity_all", "length": 20, "trial": 1}
    proposal = {"text": "t", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "reasoning_tokens": 0,
                                       "cached_tokens": 0}, "latency_s": 0.5, "model": "m", "cost_usd": 0.1}
    rows = [attempt_row(identity=identity, attempt=1, proposal=proposal, verdict={"status": "ok", "val_acc": 1.0})]
    ledger.write_trial(run_dir, "erm", "fn_a", 20, 1, finish_trial(rows, 5))
    ledger.write_json(run_dir / "manifest.json", {"trials_per_cell": 1, "cells": [
        {"target": "fn_a", "length": 20}, {"target": "fn_b", "length": 20}]})

    done = llm_erm(tmp_path, "status", "--run-id", "r1")
    assert done.returncode == 1 and "1 done, 1 missing" in done.stdout  # something missing: not a success
    done = llm_erm(tmp_path, "export", "--run-id", "r1", "--format", "jsonl", "--output", "out.jsonl")
    assert done.returncode == 0
    (row,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert row["fn"] == "fn_a" and row["selected"] is True and row["stopped_early"] is True

    for bad in (["status", "--run-id", "nope"], ["export", "--run-id", "r1", "--format", "xml", "--output", "x"],
                ["export", "--run-id", "r1", "--output", str(tmp_path / "no" / "such" / "x.csv")]):
        done = llm_erm(tmp_path, *bad)
        assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "no").exists()


def test_run_of_a_complete_grid_prints_its_summary_without_starting_prefect(tmp_path):
    import pyarrow as pa

    run_dir = tmp_path / "results" / "r1"
    identity = {"run_id": "r1", "target": "fn_a", "target_name": "parity_all", "length": 20, "trial": 1}
    proposal = {"text": "t", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "reasoning_tokens": 0,
                                       "cached_tokens": 0}, "latency_s": 0.5, "model": "m", "cost_usd": 0.0}
    ledger.write_trial(run_dir, "erm", "fn_a", 20, 1, finish_trial(
        [attempt_row(identity=identity, attempt=1, proposal=proposal, verdict={"status": "ok", "val_acc": 0.75})], 1))
    summary = pa.table({"target": ["fn_a"], "length": [20], "trials": [1], "test_mean": [0.75], "attempts": [1]})
    ledger.write_table(run_dir / "summary.parquet", summary)
    done = llm_erm(tmp_path, "run", "--functions", "fn_a", "--lengths", "20", "--attempts", "1",
                   "--proposer", "enumerate", "--run-id", "r1", "--no-analyze")
    assert done.returncode == 0 and "is complete" in done.stderr and "0.750" in done.stdout
    assert not (tmp_path / ".prefect").exists()


def test_a_run_is_complete_only_with_every_trial_and_a_fresh_summary(tmp_path):
    import pyarrow as pa

    from llm_erm.results.progress import run_is_complete

    keys = [("erm", "fn_a", 20, 1), ("erm", "fn_a", 30, 1)]
    ident = {"run_id": "r", "target": "fn_a", "target_name": "parity_all", "trial": 1}

    def trial(length: int, **kind) -> None:
        ledger.write_trial(tmp_path, "erm", "fn_a", length, 1, finish_trial(
            [attempt_row(identity={**ident, "length": length}, attempt=1, **kind)], 1))

    summary = pa.table({"target": ["fn_a"]})
    trial(20, propose_error="x")
    ledger.write_table(tmp_path / "summary.parquet", summary)
    assert not run_is_complete(tmp_path, keys, with_report=False)  # L30 missing
    trial(30, skipped=True)
    ledger.write_table(tmp_path / "summary.parquet", summary)
    assert not run_is_complete(tmp_path, keys, with_report=False)  # L30 skipped for budget
    trial(30, propose_error="x")
    ledger.write_table(tmp_path / "summary.parquet", summary)
    assert not run_is_complete(tmp_path, keys, with_report=False)  # a failed call is retried, not done
    proposal = {"text": "t", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "reasoning_tokens": 0,
                                       "cached_tokens": 0}, "latency_s": 0.5, "model": "m", "cost_usd": 0.0}
    for length in (20, 30):
        trial(length, proposal=proposal, verdict={"status": "ok", "val_acc": 0.5})
    # the summary predates the newest trial; its time is set outright, as two writes can share a clock tick
    newest = max(p.stat().st_mtime_ns for p in ledger.trial_files(tmp_path))
    os.utime(tmp_path / ledger.SUMMARY_FILE, ns=(newest - 10**9, newest - 10**9))
    assert not run_is_complete(tmp_path, keys, with_report=False)  # summary older than a trial
    ledger.write_table(tmp_path / "summary.parquet", summary)  # written after every trial
    assert run_is_complete(tmp_path, keys, with_report=False)
    assert not run_is_complete(tmp_path, keys, with_report=True)  # no report yet


def test_dry_run_prints_each_distinct_prompt_once_with_the_cost_and_calls_nothing(tmp_path, wire_server):
    done = llm_erm(tmp_path, "run", "--functions", "fn_a", "fn_i", "--lengths", "20", "--attempts", "2", "--trials", "2",
                   "--test-size", "200", "--proposer", "openai-chat", "--base-url", wire_server.url, "--dry-run",
                   key="sk-test")
    assert done.returncode == 0, done.stderr
    # 2 cells x 2 trials x 2 attempts = 8 calls, but only 2 distinct prompts: each printed once
    assert done.stdout.count("**Problem Statement:**") == 2 and "===== fn_i L20: 4 call(s), ~" in done.stdout
    assert "2 distinct prompt(s), at most 8 call(s)" in done.stdout and "at most $" in done.stdout
    assert "(decimal, length 20)" in done.stdout and "(binary, length 20)" in done.stdout
    assert wire_server.request_count == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets"]  # datasets, no results, no Prefect

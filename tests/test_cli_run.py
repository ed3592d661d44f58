"""`llm-erm run/status/export` refuse bad input with one line, exit 2 and nothing written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
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
        (["--functions", "fn_a", "--alphabet", "hex"], None, "--alphabet: must be one of binary, decimal, tabular"),
        (["--functions", "fn_a", "--alphabet", "decimal"], None, "--alphabet: applies only to user targets"),
        (["--functions", "fn_a", "--temperature", "5"], None, "--temperature: Input should be less than or equal to 2"),
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
    # no model call: at most a look at the server's context size (GET /props), which refuses a prompt too long
    assert not [r for r in wire_server.requests if r.method != "GET"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets"]  # datasets, no results, no Prefect


BAD_RUN_IDS = ["..", ".", "../elsewhere", "a/b", "/tmp/abs", ".hidden", "two words", ""]


@pytest.mark.parametrize(("command", "run_id"), [("run", bad) for bad in BAD_RUN_IDS] + [
    (command, bad) for command in ("status", "export", "analyze", "generalize", "compare") for bad in ("..", "a/b")])
def test_a_run_id_that_is_not_a_plain_name_is_refused_by_every_command(tmp_path, command, run_id):
    (tmp_path / "results").mkdir()
    args = {
        "run": ["run", "--functions", "fn_a", "--lengths", "20", "--no-prefect", "--run-id", run_id],
        "status": ["status", "--run-id", run_id],
        "export": ["export", "--run-id", run_id, "--output", "out.csv"],
        "analyze": ["analyze", "--run-id", run_id],
        "generalize": ["generalize", "--run-id", run_id, "--lengths", "10"],
        "compare": ["compare", "r1", run_id],
    }[command]
    done = llm_erm(tmp_path, *args)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and "plain name" in line, line
    assert ("CANDIDATE_RUN" if command == "compare" else "--run-id") in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"] and not list((tmp_path / "results").iterdir())


def test_a_run_folder_linked_from_elsewhere_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "attempts").mkdir(parents=True)
    (elsewhere / "manifest.json").write_text("{}")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "linked").symlink_to(elsewhere)
    for args in (["status", "--run-id", "linked"], ["analyze", "--run-id", "linked"],
                 ["run", "--functions", "fn_a", "--lengths", "20", "--no-prefect", "--run-id", "linked"]):
        done = llm_erm(tmp_path, *args)
        assert done.returncode == 2 and "outside" in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["attempts", "manifest.json"]


def write_first_bit_file(path: Path, length: int = 16, rows: int = 1200, ragged: bool = False) -> None:
    import random

    rnd = random.Random(7)
    inputs = {format(rnd.getrandbits(length), f"0{length}b") for _ in range(rows)}
    if ragged:
        inputs.add("0" * (length - 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("input,label\n" + "".join(f"{x},{x[0]}\n" for x in sorted(inputs)))


@pytest.mark.slow
def test_a_labelled_file_target_runs_under_a_safe_name_that_every_command_finds(tmp_path):
    """A relative and an absolute file path: the run writes only under results/ and datasets/, under the
    file's safe name; status, export, analyze and the viewer work on the run."""
    write_first_bit_file(tmp_path / "data" / "good.csv")
    write_first_bit_file(tmp_path / "elsewhere" / "first+bit(v2).csv", length=12)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    absolute = str(tmp_path / "elsewhere" / "first+bit(v2).csv")
    done = llm_erm(tmp_path, "run", "--functions", "data/good.csv", absolute, "--attempts", "2", "--trials", "1",
                   "--test-size", "400", "--no-prefect", "--run-id", "files", "--sandbox", "auto")
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "results" / "files"
    targets = sorted(p.name for p in (run_dir / "attempts" / "erm").iterdir())
    assert len(targets) == 2 and all(re.fullmatch(r"file-(good|first_bit_v2)-[0-9a-f]{12}", t) for t in targets), targets
    assert {p.name for p in (run_dir / "attempts" / "erm" / targets[0]).iterdir()} in ({"L12"}, {"L16"})
    # nothing new beside the user's data: only results/ and datasets/ (and .prefect/, unused here)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                   if p.relative_to(tmp_path).parts[0] not in ("results", "datasets", ".prefect"))
    assert after == before
    assert {p.name for p in (tmp_path / "datasets").iterdir()} == set(targets)

    status = llm_erm(tmp_path, "status", "--run-id", "files")
    assert status.returncode == 0 and "2 done" in status.stdout, status.stdout + status.stderr
    export = llm_erm(tmp_path, "export", "--run-id", "files", "--format", "csv", "--output", "out.csv")
    rows = ledger.read_attempts(run_dir).to_pylist()
    assert {r["target"] for r in rows} == set(targets)
    assert {r["model"] for r in rows} == {"enumerate"}  # the proposer, not the method label "erm"
    assert export.returncode == 0 and f"wrote {len(rows)} rows" in export.stdout, export.stderr
    analyze = llm_erm(tmp_path, "analyze", "--run-id", "files")
    assert analyze.returncode == 0 and "leakage check passed" in analyze.stdout, analyze.stdout + analyze.stderr
    assert (run_dir / "report" / "report.html").exists()

    from llm_erm.viewer.data import Results

    view = Results(tmp_path / "results")
    assert view.run_ids() == ["files"]
    overview = json.dumps(view.run("files"), default=str)
    assert all(t in overview for t in targets)


def test_a_labelled_file_with_inputs_of_different_lengths_is_refused_up_front(tmp_path):
    write_first_bit_file(tmp_path / "ragged.csv", ragged=True)
    done = llm_erm(tmp_path, "run", "--functions", "ragged.csv", "--no-prefect")
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "different lengths (15 to 16" in line and "same length" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ragged.csv"]


def llm_erm_in(mounts: list[str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """llm-erm in a mount namespace of its own (bubblewrap): a read-only or a tiny directory, as root
    cannot make one with permission bits."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return subprocess.run(["bwrap", "--dev-bind", "/", "/", *mounts, "--chdir", str(cwd), LLM_ERM, *args],
                          env=env, capture_output=True, text=True, timeout=300)


GRID = ["run", "--functions", "fn_a", "--lengths", "20", "--no-prefect", "--no-analyze", "--sandbox", "rlimit"]


@pytest.mark.parametrize("which", ["results", "datasets"])
def test_an_unwritable_results_or_datasets_directory_is_refused_before_any_work(tmp_path, which):
    (tmp_path / which).mkdir()
    ro = ["--ro-bind", str(tmp_path / which), str(tmp_path / which)]
    done = llm_erm_in(ro, tmp_path, *GRID)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: --{which}-dir {which} is not writable (Read-only file system"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == [which] and not list((tmp_path / which).iterdir())


def test_a_results_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "results").write_text("not a directory")
    done = llm_erm(tmp_path, *GRID)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line == "error: --results-dir results is a file, not a directory: pass a directory", line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_run_stops_it_with_one_line_naming_what_is_kept(tmp_path):
    (tmp_path / "results").mkdir()
    tiny = ["--size", "150000", "--tmpfs", str(tmp_path / "results")]  # room for a few trials, not the grid (prompts are stored once: small files)
    done = llm_erm_in(tiny, tmp_path, "run", "--functions", "fn_a", "fn_c", "fn_e", "--lengths", "20",
                      "--trials", "3", "--test-size", "400", *GRID[5:])
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: writing .*results/grid-\w+ failed: .*No space left on device\. Kept: \d+ finished "
                        r"trial\(s\) in .* and every answer already in its journal \(no half-written file\)\. Free "
                        r"space and re-run the same command to resume\.", last), last
    assert int(re.search(r"Kept: (\d+)", last)[1]) < 9  # it stopped mid-run: not every trial fitted
    assert "Traceback" not in done.stderr, done.stderr


def test_a_refused_key_is_found_in_seconds_before_any_call_or_file(tmp_path):
    from llm_erm.wire.server import WireServer

    with WireServer(api_key="sk-the-right-one") as server:
        done = llm_erm(tmp_path, "run", "--functions", "fn_a", "--lengths", "20", "--proposer", "openai-chat",
                       "--base-url", server.url, key="sk-a-wrong-one")
        assert server.calls == 0  # no model call was made: only the free models endpoint was asked
        assert [r.path for r in server.requests] == ["/v1/models"]
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the server at http://127.0.0.1") and "refused the key in OPENAI_API_KEY (401" in line
    assert list(tmp_path.iterdir()) == []


def test_the_provider_api_refuses_a_model_it_does_not_have(wire_server):
    """On api.openai.com the model is asked for by name (GET /models/{model}); a 404 refuses the run."""
    from llm_erm.errors import UsageError
    from llm_erm.proposers import make_proposer
    from llm_erm.proposers.access import _check_openai
    from llm_erm.proposers.config import ProposerConfig

    cfg = ProposerConfig(kind="openai-responses", model="gpt-9-nonexistent", base_url=wire_server.url)
    with pytest.raises(UsageError, match=r"has no model 'gpt-9-nonexistent' for this key \(404"):
        _check_openai(make_proposer(cfg), check_model=True)
    assert [r.path for r in wire_server.requests] == ["/v1/models/gpt-9-nonexistent"]
    _check_openai(make_proposer(cfg), check_model=False)  # a local server: only the key is judged


def test_a_permanent_error_mid_run_is_the_last_line_not_a_re_run_advice(tmp_path):
    from llm_erm.wire.server import Fault, WireServer

    with WireServer() as server:  # the key passes the preflight; then every call is refused (a revoked key)
        server.inject(*[Fault.http_error(401, "Incorrect API key provided.")] * 8)
        done = llm_erm(tmp_path, "run", "--functions", "fn_a", "--lengths", "20", "--attempts", "2", "--trials", "2",
                       "--test-size", "400", "--proposer", "openai-chat", "--base-url", server.url, "--no-prefect",
                       "--no-analyze", "--retry-delay", "0.01", key="sk-test")
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "Re-running will not help until this is fixed: 401 Unauthorized" in last, last
    assert "check OPENAI_API_KEY" in last and "retry exactly those" not in last, last
    assert "4 of 4 attempts: propose_error" in done.stdout, done.stdout  # why the cell has no score


@pytest.mark.slow
def test_without_a_terminal_progress_is_logged_and_a_resume_says_what_it_reuses(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent / "flows"))
    from scripted import WRONG, SeededModel

    from llm_erm.wire.server import WireServer

    model = SeededModel([WRONG], jitter_s=0.2)
    args = ["run", "--functions", "fn_a", "fn_e", "--lengths", "20", "--attempts", "4", "--trials", "3",
            "--test-size", "400", "--concurrency", "2", "--no-prefect", "--no-analyze", "--run-id", "prog",
            "--retry-delay", "0.01"]
    env = {**{k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}, "OPENAI_API_KEY": "sk-test"}
    with WireServer(model) as server:
        argv = [LLM_ERM, *args, "--proposer", "openai-chat", "--base-url", server.url]
        first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while len(model.sales) < 7:  # a trial or so done, others half-way
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.01)
        first.kill()
        first.communicate()
        from llm_erm.results.journal import Journal

        done_before = ledger.finished_trials(tmp_path / "results" / "prog")
        journaled = [r for r in Journal(tmp_path / "results" / "prog").records()
                     if (r["method"], r["target"], r["length"], r["trial"]) not in done_before]
        second = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    lines = second.stderr.splitlines()
    resume = next(line for line in lines if line.startswith("resuming:"))
    assert resume == (f"resuming: {len(done_before)}/6 trials already done; {len(journaled)} answer(s) already paid "
                      "for are reused from the journal, not bought again"), resume
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress and re.fullmatch(r"progress: 6/6 trials, 24/24 answers \(\d+ this session\), \$\d+\.\d{4} "
                                     r"spent, \S+ elapsed(, ETA ~\S+)?", progress[-1]), progress
    assert len(model.sold()) == 24  # every attempt bought ...
    assert journaled and all(model.sold()[r["seed"]] == 1 for r in journaled)  # ... and the reused ones not again


@pytest.mark.parametrize(("content", "says"), [
    ("attemps = 3\n", "config file grid.toml: unknown field 'attemps': did you mean 'attempts'?"),
    ("attempts = 0\n", "config file grid.toml: attempts: Input should be greater than or equal to 1 (got 0)"),
    ("[proposer]\nmodle = 'x'\n", "config file grid.toml: unknown field 'proposer.modle': did you mean 'model'?"),
])
def test_a_config_file_error_names_the_file_and_its_field_not_a_flag(tmp_path, content, says):
    (tmp_path / "grid.toml").write_text(content)
    done = llm_erm(tmp_path, "run", "--config", "grid.toml", "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {says}"], done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.toml"]

"""Batch mode: a grid through the Batch API of a real HTTP server on 127.0.0.1 (Files and Batches endpoints),
killed while its batch is pending and resumed; the ledger equals a plain run's on the same scripted answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from scripted import FIRST_BIT, PARITY, WRONG, SeededModel  # noqa: E402
from waiting import wait_until  # noqa: E402

from llm_erm.proposers.pricing import LIST_PRICES  # noqa: E402
from llm_erm.results import ledger  # noqa: E402
from llm_erm.results.journal import JOURNAL_DIR, read_records  # noqa: E402
from llm_erm.wire.server import WireServer  # noqa: E402

COMPARED = ["target", "length", "trial", "attempt", "seed", "text", "code", "status", "val_acc", "test_acc",
            "selected", "stopped_early"]
SCRIPT = [WRONG, FIRST_BIT, PARITY, WRONG]
CHILD = """
import json, sys
from llm_erm import GridConfig, run_grid
result = run_grid(GridConfig(**json.loads(sys.argv[1])))
sys.exit(0 if result.ok else 1)
"""


def config(tmp_path: Path, server: WireServer, results: str = "results", batch: bool = True, **overrides) -> dict:
    proposer = {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 60, "batch": batch,
                "batch_poll_s": 0.05}
    return {
        "functions": ["fn_a", "fn_e", "fn_c"], "lengths": [20], "attempts": 4, "trials": 2, "test_size": 400,
        "proposer": {**proposer, **overrides.pop("proposer", {})}, "concurrency": 4, "verify_workers": 2,
        "retry_delay_s": 0.01, "analyze": False, "run_id": "b", "results_dir": str(tmp_path / results),
        "datasets_dir": str(tmp_path / "datasets"), **overrides,
    }


def ledger_rows(run_dir: Path) -> list[dict]:
    table = ledger.read_attempts(run_dir).to_pylist()
    return sorted(({k: r[k] for k in COMPARED} for r in table), key=lambda r: (r["target"], r["trial"], r["attempt"]))


def journal(run_dir: Path) -> list[dict]:
    return [r for path in sorted((run_dir / JOURNAL_DIR).glob("*.jsonl")) for r in read_records(path)[0]]


def plain_reference(tmp_path: Path, bodies: dict | None = None, **overrides) -> list[dict]:
    """The ledger of the same grid run without batches (and, into `bodies`, what it sent, by seed)."""
    from llm_erm import GridConfig, run_grid

    with WireServer(SeededModel(SCRIPT)) as server:
        assert run_grid(GridConfig(**config(tmp_path, server, "reference", batch=False, **overrides))).ok
        if bodies is not None:
            bodies.update({r.body["seed"]: r.body for r in server.requests if r.method == "POST"})
    return ledger_rows(tmp_path / "reference" / "b")


def submitted(server: WireServer) -> list[list[str]]:
    """The request keys of every batch the server was asked to create, in order."""
    return [[line["custom_id"] for line in server.batches.lines(bid)] for bid in server.batches.created]


def test_a_batched_grid_runs_in_waves_and_equals_a_plain_run(tmp_path):
    from llm_erm import GridConfig, run_grid

    model = SeededModel(SCRIPT)
    with WireServer(model) as server:
        result = run_grid(GridConfig(**config(tmp_path, server)))
        posts = [r.path for r in server.requests if r.method == "POST"]
    assert result.ok, result.failure_message()
    run_dir = tmp_path / "results" / "b"
    plain_bodies: dict = {}
    assert ledger_rows(run_dir) == plain_reference(tmp_path, plain_bodies)
    # no answer came from a plain call: every one from a batch, one batch per wave
    assert "/v1/chat/completions" not in posts
    waves = submitted(server)
    assert 1 < len(waves) <= 4 and len(waves[0]) == 6  # wave 1: attempt 1 of every trial (3 cells x 2 trials)
    rows = ledger.read_attempts(run_dir).to_pylist()
    for w, keys in enumerate(waves, start=1):  # wave w holds attempt w of the trials still searching
        searching = {(r["target"], r["trial"]) for r in rows if r["attempt"] == w}
        assert len(keys) == len(searching)
    assert sum(map(len, waves)) == len(rows) == len(model.sold())  # each answer bought once
    solved_early = [r for r in rows if r["stopped_early"]]
    assert solved_early, "the script solves some trials before attempt 4: they must drop out of later waves"
    # each answer is journaled under the plain call's key, priced at half the list price
    price = LIST_PRICES["gpt-5"]
    list_cost = (900 * price.input + 100 * price.cached_input + 500 * price.output) / 1e6
    assert {round(r["cost_usd"], 12) for r in rows} == {round(list_cost / 2, 12)}
    assert all(not r["reused_answer"] and json.loads(r["proposal_extra"])["batch_id"].startswith("batch_")
               for r in rows)
    kinds = [r.get("kind") for r in journal(run_dir)]
    assert kinds.count("batch") == kinds.count("batch_end") == len(waves) and kinds.count("answer") == len(rows)
    # the batch lines are what a plain call sends, the attempt's own seed included
    lines = [line for bid in server.batches.created for line in server.batches.lines(bid)]
    assert {(line["url"], line["method"]) for line in lines} == {("/v1/chat/completions", "POST")}
    assert {line["body"]["seed"]: line["body"] for line in lines} == plain_bodies


def test_a_run_killed_while_its_batch_is_pending_resumes_that_batch_and_never_resubmits(tmp_path):
    model = SeededModel(SCRIPT)
    run_dir = tmp_path / "results" / "b"
    with WireServer(model) as server:
        server.batches.hold = True
        params = json.dumps(config(tmp_path, server))
        child = subprocess.Popen([sys.executable, "-c", CHILD, params], env={**os.environ})
        deadline = time.monotonic() + 120
        while not server.batches.created and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.batches.created, "the run never submitted a batch"
        polls = lambda: sum(1 for r in server.requests if r.path.startswith("/v1/batches/"))  # noqa: E731
        first_polls = polls()
        while polls() < first_polls + 3 and child.poll() is None:  # it is waiting: polling, not resubmitting
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        (pending,) = server.batches.created
        assert [r["batch_id"] for r in journal(run_dir) if r.get("kind") == "batch"] == [pending]
        assert model.sold() == {}  # nothing answered yet: the batch is still in progress

        server.batches.release(pending)  # the batch ends while no run is waiting for it
        server.batches.hold = False
        resumed = subprocess.run([sys.executable, "-c", CHILD, params], env={**os.environ}, timeout=300)
        assert resumed.returncode == 0
        waves = submitted(server)
    assert server.batches.created[0] == pending  # picked up, not resubmitted
    keys = [key for wave in waves for key in wave]
    assert len(keys) == len(set(keys)), "a request was submitted twice"
    assert sum(model.sold().values()) == len(model.sold()) == len(keys)  # each answer paid for once
    assert ledger_rows(run_dir) == plain_reference(tmp_path)


def test_a_batch_created_just_before_a_kill_is_found_by_its_metadata(tmp_path):
    """Killed after the server created the batch but before the journal said so: the resumed run finds the
    batch by the run and request hash in its metadata instead of creating (and paying for) another."""
    model = SeededModel(SCRIPT)
    run_dir = tmp_path / "results" / "b"
    with WireServer(model) as server:
        server.batches.hold = True
        params = json.dumps(config(tmp_path, server, functions=["fn_a"], trials=1))
        child = subprocess.Popen([sys.executable, "-c", CHILD, params], env={**os.environ})
        # killed once the journal holds the batch; the record is then deleted, as if the kill came first
        wait_until(lambda: child.poll() is not None or [r for r in journal(run_dir) if r.get("kind") == "batch"],
                   "the run to journal its batch", timeout_s=120)
        assert child.poll() is None, "the run ended before it journaled a batch"
        child.kill()
        child.wait(timeout=30)
        for path in (run_dir / JOURNAL_DIR).glob("*.jsonl"):  # as if the kill came before the journal write
            kept = [line for line in path.read_text().splitlines(keepends=True) if '"kind": "batch"' not in line]
            path.write_text("".join(kept))
        assert not [r for r in journal(run_dir) if r.get("kind") == "batch"]
        server.batches.release()
        server.batches.hold = False
        assert subprocess.run([sys.executable, "-c", CHILD, params], env={**os.environ}, timeout=300).returncode == 0
        keys = [key for wave in submitted(server) for key in wave]
    assert len(keys) == len(set(keys)) and sum(model.sold().values()) == len(keys)
    assert ledger_rows(run_dir) == plain_reference(tmp_path, functions=["fn_a"], trials=1)


def test_an_expired_batch_fails_the_unanswered_attempts_and_a_rerun_submits_exactly_those(tmp_path):
    from llm_erm import GridConfig, run_grid

    model = SeededModel([WRONG])  # nothing is solved: every trial runs all its attempts
    with WireServer(model) as server:
        server.batches.hold = True
        cfg = GridConfig(**config(tmp_path, server, functions=["fn_a"], attempts=1, trials=4))
        import threading

        def expire_when_submitted():
            while not server.batches.created:
                time.sleep(0.01)
            server.batches.release(status="expired", answer=3)

        releaser = threading.Thread(target=expire_when_submitted)
        releaser.start()
        first = run_grid(cfg)
        releaser.join()
        assert not first.ok and first.failed_calls == 1
        failed = [r for r in ledger.read_attempts(tmp_path / "results" / "b").to_pylist()
                  if r["status"] == "propose_error"]
        assert len(failed) == 1 and "batch_expired" in failed[0]["propose_error"]
        server.batches.hold = False
        second = run_grid(cfg)
        waves = submitted(server)
    assert second.ok
    assert [len(w) for w in waves] == [4, 1]  # only the unanswered request went again
    assert waves[1][0] in waves[0]


def test_the_budget_stops_submitting_waves(tmp_path):
    from llm_erm import GridConfig, run_grid

    price = LIST_PRICES["gpt-5"]
    half = (900 * price.input + 100 * price.cached_input + 500 * price.output) / 1e6 / 2
    model = SeededModel([WRONG])
    with WireServer(model) as server:
        # wave 1 (2 trials) spends 2 x half, just over the budget: no second wave is submitted
        result = run_grid(GridConfig(**config(tmp_path, server, functions=["fn_a"], trials=2,
                                              budget_usd=half * 1.5)))
        waves = submitted(server)
    assert [len(w) for w in waves] == [2]
    rows = ledger.read_attempts(tmp_path / "results" / "b").to_pylist()
    statuses = sorted((r["trial"], r["attempt"], r["status"]) for r in rows)
    assert [s for _, a, s in statuses if a == 1] == ["ok", "ok"]
    assert {s for _, a, s in statuses if a > 1} == {"skipped_budget"}
    assert result.skipped_budget == 6


def test_batch_mode_is_refused_for_a_proposer_without_a_batch_api(tmp_path):
    from llm_erm import GridConfig, run_grid
    from llm_erm.errors import UsageError

    base = {"functions": ["fn_a"], "lengths": [20], "results_dir": str(tmp_path / "results"),
            "datasets_dir": str(tmp_path / "datasets")}
    for kind in ("enumerate", "anthropic"):
        with pytest.raises(UsageError, match=r"--batch runs a grid through OpenAI's Batch API.*--proposer openai-"):
            run_grid(GridConfig(**base, proposer={"kind": kind, "batch": True}))
    assert not (tmp_path / "results").exists() and not (tmp_path / "datasets").exists()


def test_the_responses_api_runs_in_batches_too(tmp_path):
    from llm_erm import GridConfig, run_grid

    with WireServer(lambda endpoint, body: json.dumps({"code": PARITY})) as server:
        cfg = config(tmp_path, server, functions=["fn_a"], trials=2,
                     proposer={"kind": "openai-responses", "model": "gpt-5-mini"})
        assert run_grid(GridConfig(**cfg)).ok
        (batch,) = server.batches.created  # both trials solved at attempt 1: one wave
        lines = server.batches.lines(batch)
    assert {line["url"] for line in lines} == {"/v1/responses"} and len(lines) == 2
    assert all(line["body"]["input"][0]["content"].startswith("**Problem Statement:**") for line in lines)
    rows = ledger.read_attempts(tmp_path / "results" / "b").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["test_acc"] == 1.0 for r in rows)
    price = LIST_PRICES["gpt-5-mini"]
    tokens_in = len(lines[0]["body"]["input"][0]["content"]) // 4  # what the test server reports without usage
    assert all(r["cost_usd"] == pytest.approx((r["prompt_tokens"] * price.input + r["completion_tokens"] * price.output)
                                              / 2e6) for r in rows)
    assert rows[0]["prompt_tokens"] == tokens_in

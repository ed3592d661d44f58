"""Results on an object store (a real S3 HTTP API on loopback: moto in server mode) and trial claims.

The plain-Python path: run_grid with --results-dir s3://..., its ledger equal to a local run's, a resume read back
from the store, two processes on one run id that never buy the same attempt twice, a SIGKILL mid-trial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "flows"))
sys.path.insert(0, str(Path(__file__).parent))
from s3 import BUCKET, MotoServer  # noqa: E402
from scripted import FIRST_BIT, PARITY, WRONG, SeededModel  # noqa: E402

from llm_erm.errors import UsageError  # noqa: E402
from llm_erm.results import ledger, storage  # noqa: E402
from llm_erm.wire.server import WireServer  # noqa: E402

COMPARED = ["method_label", "target", "length", "trial", "attempt", "seed", "text", "code", "status", "val_acc",
            "test_acc", "selected", "stopped_early"]
SCRIPT = [WRONG, FIRST_BIT, PARITY, WRONG]


def grid(tmp_path: Path, server: WireServer, results: str, **overrides) -> dict:
    return {
        "functions": ["fn_a", "fn_e", "fn_c"], "lengths": [20], "attempts": 4, "trials": 2, "test_size": 400,
        "proposer": {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 20},
        "concurrency": 4, "verify_workers": 2, "retry_delay_s": 0.01, "analyze": False, "run_id": "k",
        "results_dir": results, "datasets_dir": str(tmp_path / "datasets"), **overrides,
    }


def rows(run_dir) -> list[dict]:
    table = ledger.read_attempts(run_dir).to_pylist()
    return sorted(({k: r[k] for k in COMPARED} for r in table),
                  key=lambda r: (r["method_label"], r["target"], r["trial"], r["attempt"]))


@pytest.fixture
def s3(monkeypatch):
    with MotoServer() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


def test_a_grid_on_s3_equals_a_local_run_writes_nothing_locally_and_resumes_from_the_store(tmp_path, s3, monkeypatch):
    from llm_erm import GridConfig, run_grid

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    model = SeededModel(SCRIPT)
    with WireServer(model) as server:
        result = run_grid(GridConfig(**grid(tmp_path, server, f"s3://{BUCKET}/results")))
        assert result.ok, result.errors
        sold = len(model.sales)
        again = run_grid(GridConfig(**grid(tmp_path, server, f"s3://{BUCKET}/results")))  # a resume: all done
        assert again.ok and again.pending_before == 0
        assert len(model.sales) == sold, "a resume from the store bought an answer again"
    reference = SeededModel(SCRIPT)
    with WireServer(reference) as server:
        assert run_grid(GridConfig(**grid(tmp_path, server, str(tmp_path / "local")))).ok

    run_dir = storage.resolve(f"s3://{BUCKET}/results") / "k"
    assert rows(run_dir) == rows(tmp_path / "local" / "k") and len(rows(run_dir)) > 6
    keys = s3.keys("results/k/")
    journal = [k for k in keys if k.startswith("results/k/journal/")]
    assert len(journal) == sold and all(k.endswith(".json") for k in journal)  # one object per answer
    assert "results/k/manifest.json" in keys and "results/k/summary.parquet" in keys
    assert not [k for k in keys if ".claim-" in k or k.endswith(".running")], "claims and markers are cleaned up"
    assert list(work.iterdir()) == [], "a run on s3:// wrote into the working directory"
    for key in keys:  # the dummy credentials reach no object (manifest, journal, ledger)
        assert s3.env["AWS_SECRET_ACCESS_KEY"].encode() not in s3.get(key), key
        assert s3.env["AWS_ACCESS_KEY_ID"].encode() not in s3.get(key), key


def test_an_object_store_without_its_package_or_with_credentials_in_the_config_is_refused_in_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"gs:// needs the 'gcs' extra: pip install 'llm-erm\[gcs\]'"):
        storage.resolve("gs://bucket/results")
    with pytest.raises(UsageError, match="unknown storage protocol nope://"):
        storage.resolve("nope://bucket/results")
    with pytest.raises(UsageError, match="storage_options: client_kwargs.aws_secret_access_key looks like a credential"):
        storage.resolve("s3://bucket/results", {"client_kwargs": {"aws_secret_access_key": "x"}})
    assert storage.resolve(f"file://{tmp_path}/r") == tmp_path / "r"


CHILD = """
import json, sys
from llm_erm import GridConfig, run_grid
result = run_grid(GridConfig(**json.loads(sys.argv[1])))
sys.exit(0 if result.ok else 1)
"""


def _journal_seeds(run_dir) -> set[int]:
    from llm_erm.results.journal import Journal

    journal = Journal(run_dir)
    return {r["seed"] for r in journal.records() if r.get("kind") == "answer"}


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_processes_on_one_run_id_never_buy_the_same_attempt_twice(tmp_path, where, s3):
    """Issue 19 item 13: two processes started together on one run id share the trials (claims); each attempt
    is bought once, and the ledger equals one process's run."""
    results = str(tmp_path / "results") if where == "local" else f"s3://{BUCKET}/two"
    model = SeededModel(SCRIPT, jitter_s=0.05)
    with WireServer(model, latency_s=0.02) as server:
        params = json.dumps(grid(tmp_path, server, results, functions=["fn_a", "fn_e", "fn_c", "fn_b"], trials=3))
        children = [subprocess.Popen([sys.executable, "-c", CHILD, params], env={**os.environ}, cwd=tmp_path)
                    for _ in range(2)]
        codes = [child.wait(timeout=600) for child in children]
        sold = model.sold()
    assert codes == [0, 0]
    assert sold and max(sold.values()) == 1, f"bought twice: {[s for s, n in sold.items() if n > 1]}"
    reference = SeededModel(SCRIPT)
    with WireServer(reference) as server:
        child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(grid(
            tmp_path, server, str(tmp_path / "reference"), functions=["fn_a", "fn_e", "fn_c", "fn_b"], trials=3))],
            timeout=600)
        assert child.returncode == 0
    run_dir = storage.resolve(results) / "k"
    assert rows(run_dir) == rows(tmp_path / "reference" / "k")
    assert set(sold) == set(reference.sold())


def test_a_worker_killed_mid_trial_on_s3_loses_at_most_its_calls_in_flight(tmp_path, s3):
    results = f"s3://{BUCKET}/killed"
    run_dir = storage.resolve(results) / "k"
    model = SeededModel(SCRIPT, jitter_s=0.1)
    with WireServer(model, latency_s=0.02) as server:
        params = json.dumps(grid(tmp_path, server, results, functions=["fn_a", "fn_e", "fn_c", "fn_b"], trials=3))
        child = subprocess.Popen([sys.executable, "-c", CHILD, params], env={**os.environ}, cwd=tmp_path)
        stop = threading.Event()

        def kill_mid_run():  # once answers have arrived (trials are mid-way): the worker is killed, not stopped
            while child.poll() is None and len(model.sales) < 6 and not stop.is_set():
                stop.wait(0.005)
            child.send_signal(signal.SIGKILL)

        killer = threading.Thread(target=kill_mid_run)
        killer.start()
        code = child.wait(timeout=600)
        stop.set()
        killer.join()
        assert code == -signal.SIGKILL, "the worker finished before it could be killed: make the grid longer"
        deadline = time.monotonic() + 60
        while len(model.received) != len(model.sales) and time.monotonic() < deadline:
            time.sleep(0.05)  # the requests the dead worker left in flight reach the model and are answered
        asked = set(model.received)
        lost = asked - _journal_seeds(run_dir)
        assert len(lost) <= 4, lost  # concurrency 4: at most the calls in flight
        resumed = subprocess.run([sys.executable, "-c", CHILD, params], env={**os.environ}, cwd=tmp_path, timeout=600)
        assert resumed.returncode == 0
        sold = model.sold()
    twice = {seed for seed, n in sold.items() if n > 1}
    assert twice <= lost, f"bought twice without being in flight at the kill: {twice - lost}"
    reference = SeededModel(SCRIPT)
    with WireServer(reference) as server:
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(grid(
            tmp_path, server, str(tmp_path / "reference"), functions=["fn_a", "fn_e", "fn_c", "fn_b"], trials=3))],
            timeout=600)
        assert done.returncode == 0
    assert rows(run_dir) == rows(tmp_path / "reference" / "k")


LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))


def test_run_status_analyze_export_and_view_read_a_multi_method_run_from_s3(tmp_path, s3):
    """The CLI on s3:// end to end: `run --no-prefect` writes there, then status, analyze (the report lands in
    the store), export and the viewer read it back; nothing is written to the working directory."""
    import urllib.request

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ}
    results = f"s3://{BUCKET}/cli"

    def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
        return subprocess.run([LLM_ERM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)

    done = cli("run", "--functions", "fn_a", "fn_c", "--lengths", "20", "--test-size", "400", "--proposer",
               "enumerate", "--methods", "erm", "decision-tree", "--no-prefect", "--run-id", "m",
               "--results-dir", results, "--datasets-dir", str(tmp_path / "datasets"))
    assert done.returncode == 0, done.stderr[-3000:]
    keys = s3.keys("cli/m/")
    assert "cli/m/report/report.html" in keys and "cli/m/summary.parquet" in keys, keys
    status = cli("status", "--run-id", "m", "--results-dir", results)
    assert status.returncode == 0 and "4 done" in status.stdout, status.stdout + status.stderr
    analyzed = cli("analyze", "--run-id", "m", "--results-dir", results)
    assert analyzed.returncode == 0 and "leakage check passed" in analyzed.stdout, analyzed.stderr[-3000:]
    out = tmp_path / "export.jsonl"
    exported = cli("export", "--run-id", "m", "--format", "jsonl", "--output", str(out), "--results-dir", results)
    assert exported.returncode == 0, exported.stderr
    labels = {json.loads(line)["method_label"] for line in out.read_text().splitlines()}
    assert labels == {"erm", "decision-tree"}
    missing = cli("analyze", "--run-id", "nope", "--results-dir", results)
    assert missing.returncode == 2 and "known runs: m" in missing.stderr, missing.stderr
    viewer = subprocess.Popen([LLM_ERM, "view", "--results-dir", results, "--port", "0"], cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = viewer.stdout.readline()
        url = line.split(" at ", 1)[1].split()[0]
        runs = json.loads(urllib.request.urlopen(f"{url}api/runs", timeout=60).read())["runs"]
        assert [r["run_id"] for r in runs] == ["m"], runs
        report = urllib.request.urlopen(f"{url}runs/m/report/report.html", timeout=60).read()
        assert b"<html" in report.lower()
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
    assert list(cwd.iterdir()) == [], "the CLI on s3:// wrote into the working directory"
    for key in s3.keys(""):
        assert env["AWS_SECRET_ACCESS_KEY"].encode() not in s3.get(key), key


SNOOP = """def f(x):
    import os
    seen = [k for k in os.environ if k.startswith("AWS")]
    try:
        seen += ["proc"] if b"AWS_" in open("/proc/self/environ", "rb").read() else []
    except OSError:
        pass
    if seen:
        raise RuntimeError("the candidate sees " + " ".join(seen))
    return x.count('1') % 2"""


def test_the_store_credentials_never_reach_a_candidate_a_row_or_the_manifest(tmp_path, s3):
    from llm_erm import GridConfig, run_grid

    model = SeededModel([SNOOP])
    with WireServer(model) as server:
        result = run_grid(GridConfig(**grid(tmp_path, server, f"s3://{BUCKET}/snoop", functions=["fn_a"], trials=1)))
    assert result.ok, result.errors
    (row,) = ledger.read_attempts(storage.resolve(f"s3://{BUCKET}/snoop") / "k").to_pylist()
    assert row["status"] == "ok" and row["val_acc"] == 1.0, row["first_error"]  # it saw no AWS_* variable
    for key in s3.keys("snoop/"):
        body = s3.get(key)
        assert s3.env["AWS_SECRET_ACCESS_KEY"].encode() not in body and s3.env["AWS_ACCESS_KEY_ID"].encode() not in body


# SeededModel's usage (scripted.reply) priced at gpt-5, the default model: 900 + 100 cached input, 500 output
CALL_USD = (900 * 1.25 + 100 * 0.125 + 500 * 10.0) / 1e6


def test_two_processes_on_s3_share_one_budget(tmp_path, s3):
    """The budget is the journal's spend, every worker's: two processes with one call each in flight and room
    for 5.5 calls buy 6, or 7 when both start their last call at once; never one budget each."""
    model = SeededModel([WRONG], jitter_s=0.05)
    with WireServer(model, latency_s=0.05) as server:
        params = json.dumps(grid(tmp_path, server, f"s3://{BUCKET}/budget", concurrency=1,
                                 budget_usd=5.5 * CALL_USD))
        children = [subprocess.Popen([sys.executable, "-c", CHILD, params], env={**os.environ}, cwd=tmp_path)
                    for _ in range(2)]
        for child in children:
            child.wait(timeout=600)
        sold = model.sold()
    assert max(sold.values()) == 1
    assert 6 <= sum(sold.values()) <= 7, sum(sold.values())
    table = ledger.read_attempts(storage.resolve(f"s3://{BUCKET}/budget") / "k").to_pylist()
    assert sum(r["status"] not in ("skipped_budget",) for r in table) == sum(sold.values())


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_claim_is_taken_once_a_live_one_blocks_a_stale_one_is_taken_over_and_its_holder_learns_it(
        tmp_path, where, s3):
    from llm_erm.results.claims import Claims

    run_dir = (tmp_path / "r") if where == "local" else storage.resolve(f"s3://{BUCKET}/claims") / "r"
    key = ("erm", "fn_a", 20, 1)
    first, second = Claims(run_dir), Claims(run_dir)
    held = first.try_claim(key)
    assert held is not None and held.generation == 1
    assert second.try_claim(key) is None  # live: its holder renews it
    # a holder on another machine that stopped renewing a lease ago (its machine died)
    first.release(held)
    dead = {"owner": "elsewhere-1-x", "host": "elsewhere", "pid": 1, "generation": 1, "renewed_at": time.time() - 61,
            "lease_s": 60.0}
    assert storage.create(second.path(key, 1), json.dumps(dead).encode())
    taken = second.try_claim(key)
    assert taken is not None and taken.generation == 2 and second.generations(key) == [2]
    # the live taker blocks; a holder that stalled past its lease finds out on its next renewal
    assert first.try_claim(key) is None
    stalled = Claims(run_dir)
    stale_claim = stalled.try_claim(("erm", "fn_a", 20, 2))
    assert storage.create(stalled.path(("erm", "fn_a", 20, 2), 2), json.dumps({**dead, "generation": 2}).encode())
    stalled.renew(stale_claim)
    assert stale_claim.lost.is_set()
    for claims in (first, second, stalled):
        claims.close()
    assert second.generations(key) == []  # released


def test_a_run_on_s3_replays_from_its_journal_with_no_call(tmp_path, s3):
    from llm_erm import GridConfig, run_grid

    model = SeededModel(SCRIPT)
    with WireServer(model) as server:
        assert run_grid(GridConfig(**grid(tmp_path, server, f"s3://{BUCKET}/orig", functions=["fn_a"]))).ok
        bought = len(model.sales)
        replay = grid(tmp_path, server, str(tmp_path / "replayed"), functions=["fn_a"])
        replay["proposer"] = {"kind": "replay", "replay_from": f"s3://{BUCKET}/orig/k"}
        assert run_grid(GridConfig(**replay)).ok
        assert len(model.sales) == bought  # every answer came from the store's journal
    original = rows(storage.resolve(f"s3://{BUCKET}/orig") / "k")
    again = rows(tmp_path / "replayed" / "k")
    assert [(r["text"], r["status"], r["selected"]) for r in again] == [(r["text"], r["status"], r["selected"])
                                                                         for r in original]
    # with no run id given, the id is derived from the store's recorded answers (their digest), not a path
    derived = {k: v for k, v in replay.items() if k != "run_id"}
    run_id = GridConfig(**derived).resolved_run_id()
    assert run_id == GridConfig(**derived).resolved_run_id() and run_id != "k"


def test_a_worker_whose_dataset_differs_from_the_one_the_run_recorded_is_refused(tmp_path):
    """Workers build their own datasets; one that would build other data (another generator version or seed)
    than the run recorded is refused before any call, naming the target and both ids."""
    from llm_erm import GridConfig, run_grid

    cfg = {"functions": ["fn_a"], "lengths": [20], "test_size": 400, "proposer": "enumerate", "analyze": False,
           "run_id": "d", "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets")}
    assert run_grid(GridConfig(**cfg)).ok
    manifest_path = tmp_path / "results" / "d" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    recorded = manifest["cells"][0]["dataset_id"]
    manifest["cells"][0]["dataset_id"] = "0123456789abcdef"  # as a run started by another version would say
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UsageError) as refused:
        run_grid(GridConfig(**cfg))
    message = str(refused.value)
    assert "fn_a L20" in message and recorded in message and "0123456789abcdef" in message, message

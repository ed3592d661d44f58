"""The engine without Prefect: a grid and a trial in-process, killed at arbitrary moments, resumed exactly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from scripted import FIRST_BIT, PARITY, WRONG, SeededModel  # noqa: E402
from waiting import open_connections, wait_until  # noqa: E402

from llm_erm.results import ledger  # noqa: E402
from llm_erm.results.journal import JOURNAL_DIR, read_records  # noqa: E402
from llm_erm.wire.server import WireServer  # noqa: E402

COMPARED = ["target", "length", "trial", "attempt", "seed", "text", "code", "status", "val_acc", "test_acc",
            "selected", "stopped_early"]


def config(tmp_path: Path, server: WireServer, results: str = "results", **overrides) -> dict:
    return {
        "functions": ["fn_a", "fn_e", "fn_c"], "lengths": [20], "attempts": 4, "trials": 3, "test_size": 400,
        "proposer": {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 60},  # load: no retries
        "concurrency": 4, "verify_workers": 2, "retry_delay_s": 0.01, "analyze": False, "run_id": "k",
        "results_dir": str(tmp_path / results), "datasets_dir": str(tmp_path / "datasets"), **overrides,
    }


def ledger_rows(run_dir: Path) -> list[dict]:
    table = ledger.read_attempts(run_dir).to_pylist()
    return sorted(({k: r[k] for k in COMPARED} for r in table), key=lambda r: (r["target"], r["trial"], r["attempt"]))


def journaled_seeds(run_dir: Path) -> set[int]:
    seeds = set()
    for path in (run_dir / JOURNAL_DIR).glob("*.jsonl"):
        seeds |= {record["seed"] for record in read_records(path)[0]}
    return seeds


CHILD = """
import json, sys
from llm_erm import GridConfig, run_grid
result = run_grid(GridConfig(**json.loads(sys.argv[1])))
sys.exit(0 if result.ok else 1)
"""


def test_sigkill_at_arbitrary_moments_loses_at_most_the_calls_in_flight_and_resumes_to_the_same_ledger(tmp_path):
    """At least 10 kills, each a random moment after a random number of answers (mid-call, mid-verification,
    mid-write, several trials in flight): every answer that arrived before a kill is reused, an answer lost
    to a kill was in flight, and the final ledger equals an uninterrupted run's."""
    rng = random.Random(20261201)
    model = SeededModel([WRONG, FIRST_BIT, PARITY, WRONG], jitter_s=0.12)
    run_dir = tmp_path / "results" / "k"
    kills, lost = 0, []
    with WireServer(model, latency_s=0.02) as server:
        params = json.dumps(config(tmp_path, server, functions=["fn_a", "fn_e", "fn_c", "fn_b"]))
        while True:
            child = subprocess.Popen([sys.executable, "-c", CHILD, params], env={**os.environ})
            target = len(model.sales) + rng.randint(1, 3)
            delay = rng.uniform(0.0, 0.15)

            def kill_when_due(child=child, target=target, delay=delay):
                while child.poll() is None and len(model.sales) < target:
                    time.sleep(0.002)
                time.sleep(delay)
                if child.poll() is None:
                    child.kill()

            killer = threading.Thread(target=kill_when_due)
            killer.start()
            code = child.wait(timeout=300)
            killer.join()
            if code != -signal.SIGKILL:
                assert code == 0, f"the resumed run ended with {code}"
                break
            kills += 1
            # the requests the dead client left in flight reach the model: the server is done with them all
            wait_until(lambda: open_connections(server.port) == 0, "the server to drop the killed run's connections")
            asked_before = set(model.received)
            lost.append(len(asked_before - journaled_seeds(run_dir)))
            assert kills < 60, "the grid never finished"
        sold = model.sold()
    assert kills >= 10, f"only {kills} kills: make the grid longer"
    # calls in flight are at most `concurrency`: nothing else can be lost at a kill
    assert max(lost) <= 4, lost
    # each paid answer was bought once, except those in flight at a kill (asked again on resume)
    assert sum(sold.values()) - len(sold) <= sum(lost), (lost, sold)

    reference = SeededModel(model.script)
    with WireServer(reference) as server:
        child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config(
            tmp_path, server, "reference", functions=["fn_a", "fn_e", "fn_c", "fn_b"]))],
                               timeout=300)
        assert child.returncode == 0
    assert ledger_rows(run_dir) == ledger_rows(tmp_path / "reference" / "k")
    assert set(sold) == set(reference.sold())  # the same requests, whatever the kills


def test_run_grid_needs_no_prefect_api_and_imports_no_prefect(tmp_path):
    script = """
import json, sys
from llm_erm import GridConfig, run_grid
result = run_grid(GridConfig(**json.loads(sys.argv[1])))
assert result.ok and len(result.cells) == 1 and result.cells[0]["test_mean"] == 1.0, result
assert "prefect" not in sys.modules, "the engine imported Prefect"
print("ok")
"""
    params = {"functions": ["fn_a"], "lengths": [20], "test_size": 400, "proposer": "enumerate",
              "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets")}
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # a closed port
    done = subprocess.run([sys.executable, "-c", script, json.dumps(params)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    assert (tmp_path / "results").is_dir() and (tmp_path / "results").joinpath(
        next(p.name for p in (tmp_path / "results").iterdir()), "report", "report.html").exists()


def test_run_trial_runs_one_trial_into_the_same_ledger_and_events_reach_a_callback(tmp_path):
    from llm_erm import GridConfig, run_trial
    from llm_erm.engine import Callback

    model = SeededModel([PARITY])
    events = []
    with WireServer(model) as server:
        cfg = GridConfig(**config(tmp_path, server, trials=2))
        result = run_trial(cfg, "fn_a", 20, trial=2, hooks=Callback(events.append))
    assert result.label == "fn_a L20 t2" and result.complete and result.selected["test_acc"] == 1.0
    assert ledger.finished_trials(tmp_path / "results" / "k") == {("erm", "fn_a", 20, 2)}
    kinds = [e.kind for e in events]
    assert kinds == ["cell", "attempt", "trial"] and events[1].label == "fn_a L20 t2 a1"


def test_a_killed_runs_journal_replays_its_answers_offline(tmp_path):
    from llm_erm import GridConfig, run_grid

    model = SeededModel([WRONG, FIRST_BIT])
    with WireServer(model) as server:
        first = run_grid(GridConfig(**config(tmp_path, server, functions=["fn_a"], trials=1)))
    assert first.ok and len(model.sales) == 4
    # a replay run (another run id) answers every attempt from the first run's journal, with no server
    replayed = run_grid(GridConfig(**{**config(tmp_path, server, functions=["fn_a"], trials=1, run_id="again"),
                                      "proposer": {"kind": "replay", "replay_from": str(tmp_path / "results" / "k")}}))
    assert replayed.ok
    texts = [r["text"] for r in ledger_rows(tmp_path / "results" / "again")]
    assert texts == [r["text"] for r in ledger_rows(tmp_path / "results" / "k")]


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"selection": "best-test"}, {"sandbox": "docker"},
                                 {"proposer": {"kind": "nope"}}])
def test_bad_config_is_refused_before_any_file_is_written(tmp_path, bad):
    from llm_erm import GridConfig, run_grid
    from llm_erm.errors import UsageError

    base = {"functions": ["fn_a"], "lengths": [20], "proposer": "enumerate",
            "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets")}
    with pytest.raises((UsageError, ValueError)):
        run_grid(GridConfig(**{**base, **bad}))
    assert not (tmp_path / "results").exists() and not (tmp_path / "datasets").exists()


@pytest.mark.parametrize("mechanism", ["sysv_shm", "posix_shm", "keyring_persistent", "files"])
def test_in_a_grid_a_stashing_candidate_never_helps_the_next_one_on_the_same_worker(tmp_path, mechanism):
    """The grid path itself: one long-lived sandbox worker, a writer then a lazy reader as attempts 1 and 2 of a
    trial, then an honest program: the reader stays at chance, the honest one scores 1.0."""
    from scripted import ScriptedModel

    from llm_erm import GridConfig, run_grid

    def program(role: str) -> str:
        text = (Path(__file__).parent / "hostile" / "stash.py").read_text()
        return text.replace("__ROLE__", role).replace("__MECHANISM__", mechanism)

    pattern = "def f(x):\n    return int('10101010' in x)"
    model = ScriptedModel([program("write"), program("read"), pattern])
    with WireServer(model) as server:  # fn_c: the writer's parity answers do not solve it, so all 3 attempts run
        result = run_grid(GridConfig(**config(tmp_path, server, functions=["fn_c"], trials=1, attempts=3,
                                              concurrency=1, verify_workers=1)))
    assert result.ok
    writer, reader, honest = sorted(ledger.read_attempts(tmp_path / "results" / "k").to_pylist(),
                                    key=lambda r: r["attempt"])
    assert writer["status"] == "ok" and writer["val_acc"] < 1.0
    # nothing of the writer reached the reader: it answered 0 everywhere (exactly chance on balanced splits),
    # not the writer's stashed answers
    assert reader["val_acc"] == 0.5 and reader["test_acc"] == 0.5 and reader["signature"] != writer["signature"]
    assert honest["val_acc"] == 1.0 and honest["test_acc"] == 1.0

"""The answer journal: durable on write, torn lines skipped, every process's answers and spend seen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llm_erm.engine.budget import Budget
from llm_erm.results.journal import JOURNAL_DIR, Journal, read_records, request_key


def answer(cost: float | None = 0.25, text: str = "def f(x): return 0") -> dict:
    return {"kind": "answer", "text": text, "cost_usd": cost,
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "reasoning_tokens": 0, "cached_tokens": 0}}


def test_an_answer_is_on_disk_when_append_returns_and_a_new_journal_finds_it(tmp_path):
    journal = Journal(tmp_path)
    key = request_key(run_id="r", trial=1, attempt=1)
    journal.append(key, answer())
    (path,) = (tmp_path / JOURNAL_DIR).iterdir()
    assert json.loads(path.read_text())["key"] == key  # written before append returned, not at close
    again = Journal(tmp_path)
    assert again.lookup(key)["text"] == "def f(x): return 0"
    assert again.lookup(request_key(run_id="r", trial=1, attempt=2)) is None
    assert again.spent_usd() == pytest.approx(0.25)


def test_keys_differ_by_every_part_of_the_request():
    base = dict(run_id="r", proposer={"model": "gpt-5"}, prompt_sha256="p", trial=1, attempt=1)
    keys = {request_key(**base)} | {request_key(**{**base, name: value}) for name, value in
                                    [("run_id", "s"), ("proposer", {"model": "gpt-5-mini"}), ("prompt_sha256", "q"),
                                     ("trial", 2), ("attempt", 2)]}
    assert len(keys) == 6


def test_a_torn_last_line_is_not_a_record_and_the_rest_still_is(tmp_path):
    directory = tmp_path / JOURNAL_DIR
    directory.mkdir()
    whole = json.dumps({"key": "a", **answer(0.5)})
    (directory / "other-1.jsonl").write_text(whole + "\n" + whole.replace('"a"', '"b"')[:40])
    journal = Journal(tmp_path)
    assert journal.lookup("a") is not None and journal.lookup("b") is None and len(journal) == 1
    records, offset = read_records(directory / "other-1.jsonl")
    assert len(records) == 1 and offset == len(whole) + 1


WRITER = """
import sys
from pathlib import Path
from llm_erm.results.journal import Journal
journal = Journal(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    journal.append(f"{sys.argv[3]}-{i}", {"kind": "answer", "text": "x", "cost_usd": 0.1})
print("written", flush=True)
sys.stdin.read()  # stay alive until killed
"""


def test_answers_of_a_killed_process_and_of_other_workers_count_for_lookup_and_budget(tmp_path):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "5", name], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for name in ("w1", "w2")]
    for w in writers:
        assert w.stdout.readline().strip() == "written"
    os.kill(writers[0].pid, signal.SIGKILL)  # killed: its answers were durable before it died
    journal = Journal(tmp_path)
    budget = Budget(1.5, journal)
    assert journal.spent_usd() == pytest.approx(1.0) and not budget.exhausted()
    assert journal.lookup("w1-4") is not None and journal.lookup("w2-0") is not None
    writers[1].stdin.write("")
    third = subprocess.run([sys.executable, "-c", WRITER.replace("sys.stdin.read()", ""), str(tmp_path), "5", "w3"],
                           capture_output=True, text=True, timeout=60)
    assert third.returncode == 0
    assert budget.exhausted()  # the third worker's spend is seen on the next check, without a restart
    for w in writers:
        w.kill()
        w.wait()
    assert len(list((tmp_path / JOURNAL_DIR).iterdir())) == 3  # one file per process: no shared writes


def test_budget_without_a_limit_is_never_exhausted_and_unpriced_answers_cost_nothing(tmp_path):
    journal = Journal(tmp_path)
    journal.append("k", answer(None))
    assert journal.spent_usd() == 0.0 and not Budget(None, journal).exhausted()
    assert Budget(0.0001, Journal(Path(tmp_path) / "elsewhere")).spent_usd == 0.0

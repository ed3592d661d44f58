"""The icl method and several methods in one grid, against a real HTTP server speaking the OpenAI wire protocol."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from scripted import PARITY, reply  # noqa: E402

from llm_erm import GridConfig, run_grid  # noqa: E402
from llm_erm.datasets import DatasetSpec, build_dataset  # noqa: E402
from llm_erm.methods.icl import build_prompt, parse_fork, parse_upstream  # noqa: E402
from llm_erm.results import ledger  # noqa: E402
from llm_erm.wire.server import Reply, WireServer, prompt_of  # noqa: E402

TEST_INPUT = re.compile(r"\*\*Test Input:\*\*\n```\n(.*)\n```")


class Labeller:
    """Answers an icl prompt with the parity of its test input, and an erm prompt with the parity program."""

    def __init__(self, wrap: str = '{{"label": "{}"}}', latency_s: float = 0.0):
        self.wrap, self.latency_s = wrap, latency_s
        self.asked: Counter[tuple[str, int]] = Counter()  # (prompt, seed): each trial samples with its own
        self.bodies: list[tuple[str, dict]] = []
        self._lock = threading.Lock()

    def __call__(self, endpoint: str, body: dict) -> Reply:
        prompt = prompt_of(body)
        with self._lock:
            self.asked[prompt, body.get("seed")] += 1
            self.bodies.append((endpoint, body))
        if self.latency_s:
            time.sleep(random.Random(prompt).uniform(0, self.latency_s))
        match = TEST_INPUT.search(prompt)
        if match is None:
            return reply(PARITY)
        label = match.group(1).count("1") % 2
        return Reply(self.wrap.format(label), prompt_tokens=len(prompt) // 3, completion_tokens=5)


def config(tmp_path: Path, server: WireServer, methods, **overrides) -> GridConfig:
    return GridConfig(**{
        "functions": ["fn_a"], "lengths": [20], "test_size": 400, "attempts": 2, "methods": methods,
        "proposer": {"kind": "openai-chat", "base_url": server.url}, "retry_delay_s": 0.01, "analyze": False,
        "run_id": "m", "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets"),
        **overrides})


def test_the_upstream_prompt_byte_for_byte():
    prompt = build_prompt(["0101 -> 0", "1101 -> 1"], "0011", 4, "binary")
    assert prompt == (
        "**Problem Statement:**\nYou are given input vectors (type: binary, length: 4) and their corresponding binary "
        "outputs ('0' or '1'). Your task is to analyze the provided examples to understand the underlying pattern or "
        "function. Then, for the final test input, predict its correct label.\n\n**Data Examples:**\n```\n0101 -> 0\n"
        "1101 -> 1\n```\n\n**Test Input:**\n```\n0011\n```\n\nBased on the examples, what is the label for the test "
        'input? You must output ONLY a single JSON object in the format: {"label": "<your predicted label>"}.')
    assert "(type: decimal, length: 6)" in build_prompt([], "123456", 6, "decimal")


@pytest.mark.parametrize(("text", "upstream", "fork"), [
    ('{"label": "1"}', "1", "1"),
    ('Sure. {"label": 0}', "0", "0"),
    ("1", "1", None),  # upstream accepts a bare digit; the fork does not
    ('<think>{maybe}</think>{"label":"1"}', None, "1"),  # the greedy span covers both braces
    ('{"label": "1"} {"label": "0"}', None, "1"),  # two objects: upstream's JSON fails; the fork takes the first
    ('{"label": "2"}', "2", None),  # upstream takes any value (counted wrong); the fork wants 0/1
    ("no idea", None, None),
])
def test_both_upstream_parsers_on_crafted_answers(text, upstream, fork):
    assert parse_upstream(text) == upstream and parse_fork(text) == fork


def test_methods_share_the_cells_splits_and_icl_answers_from_the_examples(tmp_path):
    model = Labeller()
    with WireServer(model) as server:
        cfg = config(tmp_path, server, ["erm", {"method": "icl", "settings": {"test_prompts": 10}},
                                        {"method": "icl", "label": "icl-fork", "settings": {"test_prompts": 10,
                                         "parser": "fork", "api": "completions"}}])
        result = run_grid(cfg)
    assert result.ok, result.failure_message()
    rows = {r["method_label"]: r for r in ledger.read_attempts(tmp_path / "results" / "m").to_pylist()
            if r["selected"]}
    assert set(rows) == {"erm", "icl", "icl-fork"}
    assert len({r["dataset_id"] for r in rows.values()}) == 1  # every method on the same stored splits
    assert rows["erm"]["test_acc"] == 1.0 and rows["icl"]["test_acc"] == 1.0 and rows["icl-fork"]["test_acc"] == 1.0
    extra = json.loads(rows["icl"]["method_extra"])
    assert (extra["test_prompts"], extra["parsed"], extra["parser"], extra["api"]) == (10, 10, "upstream", "chat")
    assert json.loads(rows["icl-fork"]["method_extra"])["api"] == "completions"
    assert rows["icl"]["n_train"] == 200 and rows["erm"]["n_train"] == 100  # icl sees train + val; erm train
    # 10 chat + 10 completions icl calls and one erm call (solved at attempt 1)
    endpoints = Counter(endpoint for endpoint, _ in model.bodies)
    assert endpoints == {"chat/completions": 11, "completions": 10}
    icl_bodies = [b for e, b in model.bodies if "messages" in b and TEST_INPUT.search(prompt_of(b))]
    assert all((b["temperature"], b["top_p"], b["max_tokens"]) == (0.2, 0.95, 1024) for b in icl_bodies)
    completions = [b for e, b in model.bodies if e == "completions"]
    assert all("messages" not in b and b["prompt"].startswith("**Problem Statement:**") for b in completions)
    # the examples are the cell's train + val lines, in stored order; the test inputs half of each label
    dataset = build_dataset(DatasetSpec("fn_a", 20, test_size=400), tmp_path / "datasets")
    examples = dataset.split("train").lines + dataset.split("val").lines
    first = prompt_of(icl_bodies[0])
    assert first == build_prompt(examples, TEST_INPUT.search(first).group(1), 20, "binary")
    summary = {c["method_label"]: c for c in result.cells}
    assert set(summary) == {"erm", "icl", "icl-fork"} and summary["icl"]["test_mean"] == 1.0


def test_unparsable_answers_count_as_wrong_and_are_counted(tmp_path):
    with WireServer(Labeller(wrap="I think it is {} but I am not sure")) as server:
        result = run_grid(config(tmp_path, server, [{"method": "icl", "settings": {"test_prompts": 6}}]))
    (row,) = ledger.read_attempts(tmp_path / "results" / "m").to_pylist()
    extra = json.loads(row["method_extra"])
    assert result.ok and row["test_acc"] == 0.0 and extra["parsed"] == 0 and extra["predictions"] == "------"


def test_a_killed_icl_run_resumes_without_asking_again_what_was_answered(tmp_path):
    model = Labeller(latency_s=0.1)
    child_code = ("import json, sys\nfrom llm_erm import GridConfig, run_grid\n"
                  "sys.exit(0 if run_grid(GridConfig(**json.loads(sys.argv[1]))).ok else 1)")
    with WireServer(model) as server:
        params = config(tmp_path, server, [{"method": "icl", "settings": {"test_prompts": 24}}], concurrency=4,
                        trials=2).model_dump(mode="json")
        kills = 0
        while True:
            child = subprocess.Popen([sys.executable, "-c", child_code, json.dumps(params)], env={**os.environ})
            target = sum(model.asked.values()) + 8
            while child.poll() is None and sum(model.asked.values()) < target:
                time.sleep(0.005)
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            code = child.wait(timeout=300)
            if code != -signal.SIGKILL:
                assert code == 0
                break
            kills += 1
            assert kills < 40
    assert kills >= 3
    asked_twice = sum(n - 1 for n in model.asked.values() if n > 1)
    assert asked_twice <= 4 * kills  # only calls in flight at a kill (concurrency 4) are asked again
    rows = ledger.read_attempts(tmp_path / "results" / "m").to_pylist()
    assert sorted(r["trial"] for r in rows) == [1, 2] and all(r["test_acc"] == 1.0 for r in rows)
    assert len(model.asked) == 48  # 24 prompts x 2 trials, each trial with its own seeds
    assert len({prompt for prompt, _ in model.asked}) == 24

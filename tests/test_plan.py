"""One plan: the dry run counts and prices exactly the calls the run makes, per method label."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from scripted import WRONG  # noqa: E402

from llm_erm import GridConfig, run_grid  # noqa: E402
from llm_erm.errors import UsageError  # noqa: E402
from llm_erm.plan import dry_run, plan_run  # noqa: E402
from llm_erm.proposers.pricing import LIST_PRICES  # noqa: E402
from llm_erm.wire.server import Reply, WireServer, prompt_of  # noqa: E402

TEST_INPUT = re.compile(r"\*\*Test Input:\*\*\n```\n(.*)\n```")


def answer(endpoint: str, body: dict) -> Reply:
    """icl prompts get a label, erm prompts a wrong program: erm never stops early, so every attempt is made."""
    match = TEST_INPUT.search(prompt_of(body))
    if match is None:
        return Reply(f"```python\n{WRONG}\n```", prompt_tokens=10, completion_tokens=10)
    label = match.group(1).count("1") % 2
    return Reply(f'{{"label": "{label}"}}', prompt_tokens=10, completion_tokens=3)


def grid(tmp_path: Path, server_url: str, **overrides) -> GridConfig:
    return GridConfig(**{
        "functions": ["fn_a", "fn_c"], "lengths": [20], "test_size": 200, "attempts": 3, "trials": 2,
        "methods": ["erm", {"method": "erm", "label": "erm-mini", "proposer": {"model": "gpt-5-mini"}},
                    {"method": "icl", "settings": {"test_prompts": 6}}, "decision-tree"],
        "proposer": {"kind": "openai-chat", "base_url": server_url, "call_timeout_s": 10}, "retry_delay_s": 0.01,
        "analyze": False, "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets"),
        **overrides})


def test_the_dry_runs_calls_per_label_are_the_calls_the_run_makes(tmp_path):
    with WireServer(answer) as server:
        config = grid(tmp_path, server.url)
        planned = dry_run(plan_run(config))
        # the dry run asks no model (it may look at the server's context size, GET /props)
        assert not [r for r in server.requests if r.method == "POST"]
        result = run_grid(config)
        assert result.ok, result.failure_message()
        bodies = [r.body for r in server.requests if r.method == "POST" and r.path.endswith("completions")]
    sent = Counter("icl" if TEST_INPUT.search(prompt_of(b)) else "erm-mini" if b["model"] == "gpt-5-mini" else "erm"
                   for b in bodies)
    # 2 cells x 2 trials: 3 attempts per erm label, 6 test prompts for icl, nothing for the trained baseline
    assert sent == {"erm": 12, "erm-mini": 12, "icl": 24}
    assert {label: cost.calls for label, cost in planned.costs.items()} == {**sent, "decision-tree": 0}
    assert planned.calls == len(bodies)
    # the prompts it lists are the prompts sent, each distinct erm prompt once with its calls per label
    erm_prompts = {prompt_of(b) for b in bodies if not TEST_INPUT.search(prompt_of(b))}
    listed = [p for p in planned.prompts if p.distinct == 1]
    assert {p.prompt for p in listed} == erm_prompts and all(p.calls == {"erm": 6, "erm-mini": 6} for p in listed)
    icl_first = {p.prompt for p in planned.prompts if p.distinct == 6}
    assert len(icl_first) == 2 and icl_first <= {prompt_of(b) for b in bodies}


def test_each_label_is_priced_at_its_own_model_rate_and_cap(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = grid(tmp_path, "http://127.0.0.1:9/v1", proposer={"kind": "openai-responses", "batch": True})
    planned = dry_run(plan_run(config))
    costs = planned.costs
    assert (costs["erm"].basis.model, costs["erm"].basis.tier) == ("gpt-5", "batch")
    assert costs["erm"].basis.price == LIST_PRICES["gpt-5"].scaled(0.5)
    assert (costs["erm-mini"].basis.model, costs["erm-mini"].basis.price) == (
        "gpt-5-mini", LIST_PRICES["gpt-5-mini"].scaled(0.5))
    # icl is never batched and sends no service tier: list price, at its own 1 024-token cap
    assert (costs["icl"].basis.price, costs["icl"].basis.output_cap) == (LIST_PRICES["gpt-5"], 1024)
    assert costs["decision-tree"].basis is None and costs["decision-tree"].estimate_usd() == 0.0
    assert planned.estimate_usd() == pytest.approx(sum(c.estimate_usd() for c in costs.values()))
    text = planned.estimate_text()
    assert "erm-mini: 2 distinct prompt(s), at most 12 call(s)" in text and "with gpt-5-mini at the batch rate" in text
    assert "icl: 12 distinct prompt(s), at most 24 call(s)" in text and "total: at most 48 call(s), at most $" in text


def test_bounds_are_config_constraints_refused_by_option_name():
    with pytest.raises(UsageError, match="--candidate-timeout: .*60"):
        GridConfig.from_options(functions=["fn_a"], candidate_timeout_s=100)


def test_a_refusal_comes_from_the_plan_before_anything_is_written(tmp_path):
    with WireServer(answer) as server:
        config = grid(tmp_path, server.url, methods=["erm", {"method": "icl", "settings": {"nope": 1}}])
        with pytest.raises(UsageError, match="icl has no setting 'nope'"):
            plan_run(config)
        with pytest.raises(UsageError, match="icl has no setting 'nope'"):
            run_grid(config)
        assert not [r for r in server.requests if r.method == "POST"]
    assert not (tmp_path / "results").exists() and not (tmp_path / "datasets").exists()


def test_a_new_method_kind_is_one_registration(tmp_path):
    """The config, the plan and the engine read the registry: a kind registered here runs in a grid."""
    from llm_erm.engine import methods
    from llm_erm.engine.methods import KINDS, MethodKind, Prepared, register

    def majority(run, cell, work, identity):
        labels = cell.dataset.split("train").labels
        guess = int(sum(labels) * 2 >= len(labels))
        test = cell.dataset.split("test").labels
        return [methods._row(identity, status="ok", test_acc=sum(y == guess for y in test) / len(test), cost_usd=0.0)]

    register(MethodKind("majority", majority, lambda config, spec: Prepared(spec, dict(spec.settings))))
    try:
        config = GridConfig(functions=["fn_a"], lengths=[20], test_size=200, methods=["majority"], analyze=False,
                            results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"))
        assert dry_run(plan_run(config)).calls == 0
        result = run_grid(config)
        assert result.ok and [c["method_label"] for c in result.cells] == ["majority"]
        assert result.cells[0]["test_mean"] == 0.5  # balanced test split
    finally:
        del KINDS["majority"]
    with pytest.raises(UsageError, match="unknown method 'majority'"):
        GridConfig.from_options(methods=["majority"])

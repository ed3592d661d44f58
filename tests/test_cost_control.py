"""Cost control besides batches: OpenAI's flex tier priced at what the server says it served, the dry run's
cost basis per provider (batch and flex at half price), extra request fields; against a real HTTP server."""

from __future__ import annotations

import pytest

from llm_erm.errors import UsageError
from llm_erm.proposers import ProposerConfig, ProposeRequest, Usage, make_proposer
from llm_erm.proposers.pricing import LIST_PRICES, cost_usd
from llm_erm.wire.server import Reply

REQUEST = ProposeRequest(prompt="find f\n0101 -> 0", trial=1, attempt=1, seed=5)
USAGE = dict(prompt_tokens=10_000, cached_tokens=2_000, completion_tokens=3_000)


def list_cost(model: str) -> float:
    p = LIST_PRICES[model]
    return (8_000 * p.input + 2_000 * p.cached_input + 3_000 * p.output) / 1e6


@pytest.fixture
def priced(wire_server):
    wire_server.answer = lambda endpoint, body: Reply('{"code": "def f(x): return 0"}', **USAGE)
    return wire_server


@pytest.mark.parametrize("kind", ["openai-responses", "openai-chat"])
def test_the_flex_tier_is_sent_and_priced_at_half_the_list_price(priced, kind):
    p = make_proposer(ProposerConfig(kind=kind, base_url=priced.url, service_tier="flex"))
    proposal = p.propose(REQUEST)
    assert priced.requests[-1].body["service_tier"] == "flex"
    assert proposal.extra["service_tier"] == "flex"
    assert proposal.cost_usd == pytest.approx(list_cost("gpt-5") / 2)
    # the tier changes price and wait, not the answer: a flex run and a default run share their journal keys
    assert p.identity() == make_proposer(ProposerConfig(kind=kind, base_url=priced.url)).identity()


def test_an_answer_is_priced_by_the_tier_the_server_served(priced):
    auto = make_proposer(ProposerConfig(kind="openai-chat", base_url=priced.url, service_tier="auto")).propose(REQUEST)
    assert auto.extra["service_tier"] == "default" and auto.cost_usd == pytest.approx(list_cost("gpt-5"))
    priority = make_proposer(ProposerConfig(kind="openai-chat", base_url=priced.url, service_tier="priority"))
    assert priority.propose(REQUEST).cost_usd is None  # priority rates are not modelled: unpriced, not wrong
    plain = make_proposer(ProposerConfig(kind="openai-chat", base_url=priced.url)).propose(REQUEST)
    assert "service_tier" not in priced.requests[-1].body and plain.cost_usd == pytest.approx(list_cost("gpt-5"))


def test_the_tier_rates():
    usage = Usage(**USAGE)
    assert cost_usd("gpt-5", usage, "batch") == pytest.approx(list_cost("gpt-5") / 2)
    assert cost_usd("gpt-5", usage, "flex") == cost_usd("gpt-5", usage, "batch")
    assert cost_usd("gpt-5", usage, "default") == cost_usd("gpt-5", usage) == pytest.approx(list_cost("gpt-5"))
    assert cost_usd("gpt-5", usage, "priority") is None and cost_usd("no-such-model", usage, "batch") is None


def test_the_dry_runs_cost_basis_follows_the_provider_the_rate_and_the_output_cap():
    def basis(**settings):
        return make_proposer(ProposerConfig(**settings)).cost_basis()

    standard = basis(kind="openai-responses")
    assert (standard.model, standard.output_cap, standard.tier) == ("gpt-5", 20000, "standard")
    assert standard.price == LIST_PRICES["gpt-5"]
    batch = basis(kind="openai-responses", batch=True)
    assert batch.tier == "batch" and batch.price.output == LIST_PRICES["gpt-5"].output / 2
    assert basis(kind="openai-chat", model="gpt-5-mini", service_tier="flex").price == LIST_PRICES["gpt-5-mini"].scaled(0.5)
    assert basis(kind="anthropic", model="claude-haiku-4-5").price == LIST_PRICES["claude-haiku-4-5"]
    assert basis(kind="anthropic", model="claude-haiku-4-5", thinking_budget=4096).output_cap == 8192 + 4096
    assert basis(kind="gemini").model == "gemini-2.5-pro" and basis(kind="gemini").output_cap == 20000
    local = basis(kind="openai-chat", model="qwen2.5-coder-0.5b", base_url="http://127.0.0.1:8080/v1")
    assert local.price is None and local.output_cap == 2048 and local.estimate_usd(10, 1000) is None
    # 4 calls of 1 000 prompt tokens each, at the 20 000-token cap, batch rate
    assert batch.estimate_usd(4, 4_000) == pytest.approx((4_000 * 0.625 + 4 * 20_000 * 5.00) / 1e6)


def test_extra_body_fields_reach_the_server_the_identity_and_batch_lines(wire_server):
    p = make_proposer(ProposerConfig(kind="openai-chat", base_url=wire_server.url, model="local",
                                     extra_body={"top_k": 20, "cache_prompt": False}))
    p.propose(REQUEST)
    body = wire_server.requests[-1].body
    assert (body["top_k"], body["cache_prompt"], body["seed"]) == (20, False, 5)
    assert p.identity()["params"]["extra_body"] == {"top_k": 20, "cache_prompt": False}
    assert p.batch_body(REQUEST) == body  # a batch line sends exactly what a call sends


def test_batch_and_flex_need_an_openai_proposer():
    with pytest.raises(UsageError, match="proposer 'gemini' has none"):
        ProposerConfig(kind="gemini", batch=True).resolved()
    assert ProposerConfig(kind="openai-chat", batch=True).resolved().batch

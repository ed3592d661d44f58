"""Cost estimates: list prices per million tokens, cached input, unpriced models."""

import json

import pytest

from llm_erm.errors import UsageError
from llm_erm.proposers.base import Usage
from llm_erm.proposers.pricing import LIST_PRICES, PRICES_ENV, base_model, cost_usd, price_of

MILLION = 1_000_000


def test_gpt5_cost_counts_cached_input_at_the_cached_rate():
    usage = Usage(prompt_tokens=MILLION, cached_tokens=200_000, completion_tokens=100_000, reasoning_tokens=80_000)
    # 800k uncached x 1.25 + 200k cached x 0.125 + 100k output (reasoning included) x 10.00
    assert cost_usd("gpt-5", usage) == pytest.approx(1.0 + 0.025 + 1.0)


def test_gpt52_prices():
    usage = Usage(prompt_tokens=2 * MILLION, cached_tokens=MILLION, completion_tokens=MILLION)
    assert cost_usd("gpt-5.2", usage) == pytest.approx(1.75 + 0.175 + 14.00)


def test_reasoning_tokens_are_not_billed_twice():
    with_reasoning = Usage(prompt_tokens=1000, completion_tokens=5000, reasoning_tokens=4000)
    without = Usage(prompt_tokens=1000, completion_tokens=5000)
    assert cost_usd("o4-mini", with_reasoning) == cost_usd("o4-mini", without)


@pytest.mark.parametrize(
    "name, base",
    [("gpt-5-2025-08-07", "gpt-5"), ("gpt-4o-2024-08-06", "gpt-4o"), ("openai/gpt-5-mini", "gpt-5-mini"),
     ("GPT-4.1", "gpt-4.1"), ("o3-mini-2025-01-31", "o3-mini")],
)
def test_dated_and_prefixed_names_price_like_their_base(name, base):
    assert base_model(name) == base
    usage = Usage(prompt_tokens=1234, cached_tokens=34, completion_tokens=567)
    assert cost_usd(name, usage) == cost_usd(base, usage) is not None


def test_unknown_model_is_unpriced_not_free():
    usage = Usage(prompt_tokens=1000, completion_tokens=1000)
    assert cost_usd("Qwen/Qwen2.5-Coder-32B-Instruct", usage) is None
    assert cost_usd("gpt-5-turbo-ultra", usage) is None
    assert cost_usd("gpt-5", Usage()) == 0.0  # a priced model with no tokens is free, and says so


def test_the_table_covers_the_requested_models_with_sane_prices():
    for model in ("gpt-5", "gpt-5.2", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4o",
                  "gpt-4o-mini", "o3", "o3-mini", "o4-mini"):
        price = LIST_PRICES[model]
        assert 0 < price.cached_input < price.input < price.output, model


def test_price_file_overrides_and_extends_the_table(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({
        "gpt-5": {"input": 1.0, "cached_input": 0.1, "output": 8.0},
        "my-local-model": {"input": 0.0, "cached_input": 0.0, "output": 0.0},
    }), encoding="utf-8")
    monkeypatch.setenv(PRICES_ENV, str(path))
    usage = Usage(prompt_tokens=MILLION, completion_tokens=MILLION)
    assert cost_usd("gpt-5-2025-08-07", usage) == pytest.approx(9.0)
    assert cost_usd("my-local-model", usage) == 0.0
    assert price_of("gpt-4o") == LIST_PRICES["gpt-4o"]
    monkeypatch.delenv(PRICES_ENV)
    assert cost_usd("gpt-5", usage) == pytest.approx(11.25)


def test_unreadable_price_file_is_a_usage_error(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text('{"gpt-5": {"input": 1.0}}', encoding="utf-8")
    monkeypatch.setenv(PRICES_ENV, str(path))
    with pytest.raises(UsageError, match="LLM_ERM_PRICES=.*prices.json is not a readable price file"):
        price_of("gpt-5")
    monkeypatch.setenv(PRICES_ENV, str(tmp_path / "absent.json"))
    with pytest.raises(UsageError, match="absent.json is not a readable price file"):
        price_of("gpt-5")

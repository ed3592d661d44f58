"""Estimated cost of a call: tokens x a price table in USD per million tokens.

The table holds OpenAI's published list prices (standard tier) as of writing (late 2025); they change,
and discounts (batch, flex, contracts) are not modelled. To override or add models, point the
environment variable LLM_ERM_PRICES at a JSON file
    {"my-model": {"input": 0.5, "cached_input": 0.05, "output": 1.5}, ...}
whose entries replace or extend the table. A model found in neither is unpriced: its cost is None,
never 0, so a report never shows a paid run as free.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from llm_erm.errors import UsageError
from llm_erm.proposers.base import Usage

PRICES_ENV = "LLM_ERM_PRICES"


@dataclass(frozen=True)
class Price:
    """USD per one million tokens."""

    input: float
    cached_input: float
    output: float  # reasoning tokens are output tokens

    def cost(self, usage: Usage) -> float:
        uncached = max(usage.prompt_tokens - usage.cached_tokens, 0)
        return (
            uncached * self.input + usage.cached_tokens * self.cached_input + usage.completion_tokens * self.output
        ) / 1_000_000


LIST_PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5.1": Price(1.25, 0.125, 10.00),
    "gpt-5.2": Price(1.75, 0.175, 14.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "o1": Price(15.00, 7.50, 60.00),
    "o3": Price(2.00, 0.50, 8.00),
    "o3-mini": Price(1.10, 0.55, 4.40),
    "o4-mini": Price(1.10, 0.275, 4.40),
}

# Snapshot names carry a date: gpt-5-2025-08-07, gpt-4o-2024-08-06.
_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def base_model(model: str) -> str:
    """gpt-5-2025-08-07 -> gpt-5; openai/gpt-5 (gateway prefix) -> gpt-5."""
    return _DATE_SUFFIX.sub("", model.strip().lower().rsplit("/", 1)[-1])


@lru_cache(maxsize=8)
def _overrides(path: str, mtime_ns: int) -> dict[str, Price]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {base_model(name): Price(**entry) for name, entry in data.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{PRICES_ENV}={path} is not a readable price file ({exc.__class__.__name__}): expected JSON "
            '{"model": {"input": ..., "cached_input": ..., "output": ...}}'
        ) from exc


def price_table() -> dict[str, Price]:
    """The list prices, with the entries of the LLM_ERM_PRICES file (if set) on top."""
    path = os.environ.get(PRICES_ENV)
    if not path:
        return LIST_PRICES
    try:
        mtime_ns = os.stat(path).st_mtime_ns
    except OSError:
        mtime_ns = -1  # let _overrides report the unreadable file
    return {**LIST_PRICES, **_overrides(path, mtime_ns)}


def price_of(model: str) -> Price | None:
    return price_table().get(base_model(model))


def cost_usd(model: str, usage: Usage) -> float | None:
    """Estimated USD for this usage, or None when the model is unpriced."""
    price = price_of(model)
    return None if price is None else price.cost(usage)

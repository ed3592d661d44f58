"""Estimated cost of a call: tokens x a price table in USD per million tokens.

The table holds the published list prices (standard tier, prompts up to 200k tokens) of OpenAI's, Anthropic's
and Google's models as of writing (late 2025); they change. OpenAI's Batch API and flex tier are half the
list price (`cost_usd(..., tier="batch")`); Anthropic's cache writes (1.25x input) are added by its
proposer; priority tiers, long-context surcharges and contracts are not modelled (a priority answer is
unpriced, never priced wrong). To override or add models, point the environment variable LLM_ERM_PRICES at a JSON file
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

    def scaled(self, rate: float) -> Price:
        return Price(self.input * rate, self.cached_input * rate, self.output * rate)


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
    # Anthropic (cached input = a cache read, 0.1x input)
    "claude-opus-4-5": Price(5.00, 0.50, 25.00),
    "claude-opus-4-1": Price(15.00, 1.50, 75.00),
    "claude-opus-4": Price(15.00, 1.50, 75.00),
    "claude-sonnet-4-5": Price(3.00, 0.30, 15.00),
    "claude-sonnet-4": Price(3.00, 0.30, 15.00),
    "claude-3-7-sonnet": Price(3.00, 0.30, 15.00),
    "claude-haiku-4-5": Price(1.00, 0.10, 5.00),
    "claude-3-5-haiku": Price(0.80, 0.08, 4.00),
    "claude-3-haiku": Price(0.25, 0.03, 1.25),
    # Google Gemini (paid tier; thinking tokens are output tokens)
    "gemini-3-pro-preview": Price(2.00, 0.20, 12.00),
    "gemini-2.5-pro": Price(1.25, 0.125, 10.00),
    "gemini-2.5-flash": Price(0.30, 0.03, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.01, 0.40),
    "gemini-2.0-flash": Price(0.10, 0.025, 0.40),
}

# Multiples of the list price by how the call was served. OpenAI: the Batch API and the flex tier are
# half price; "default"/"auto"/None are the list price. A tier not named here (priority) is unpriced.
TIER_RATES = {None: 1.0, "default": 1.0, "auto": 1.0, "standard": 1.0, "batch": 0.5, "flex": 0.5}

# Snapshot names carry a date: gpt-5-2025-08-07, gpt-4o-2024-08-06, claude-sonnet-4-5-20250929,
# claude-3-5-haiku-latest, gemini-2.5-flash-preview-09-2025 (a dated preview of gemini-2.5-flash).
_DATE_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|-preview-\d{2}-\d{2,4})$")


def base_model(model: str) -> str:
    """gpt-5-2025-08-07 -> gpt-5; openai/gpt-5 (gateway prefix), models/gemini-2.5-pro -> the bare name."""
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


def tier_rate(tier: str | None) -> float | None:
    """The multiple of the list price a call served this way pays; None when it is not modelled."""
    return TIER_RATES.get(tier.lower() if isinstance(tier, str) else tier)


def cost_usd(model: str, usage: Usage, tier: str | None = None) -> float | None:
    """Estimated USD for this usage, or None when the model (or the tier it was served at) is unpriced.

    `tier`: how the call was served, e.g. "batch" (the Batch API) or the service tier a response reports
    ("flex", "default"); None is the list price."""
    price = price_of(model)
    rate = tier_rate(tier)
    return None if price is None or rate is None else price.scaled(rate).cost(usage)


@dataclass(frozen=True)
class CostBasis:
    """What a cost estimate before the run needs of one proposer: the model it prices by, that model's
    price at the rate the run will pay (None: unpriced), the output cap of every call, and the rate's name."""

    model: str | None  # None: the proposer calls no model (free)
    price: Price | None
    output_cap: int
    tier: str = "standard"  # standard | batch | flex

    def estimate_usd(self, calls: int, prompt_tokens: int) -> float | None:
        """Upper bound for `calls` calls sending `prompt_tokens` in all, each at the output cap."""
        if self.model is None:
            return 0.0
        if self.price is None:
            return None
        return (prompt_tokens * self.price.input + calls * self.output_cap * self.price.output) / 1_000_000


def cost_basis(model: str, output_cap: int, tier: str | None = None) -> CostBasis:
    price, rate = price_of(model), tier_rate(tier)
    return CostBasis(model, None if price is None or rate is None else price.scaled(rate), output_cap,
                     tier or "standard")

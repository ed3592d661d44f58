"""What a grid would send, without sending it: the `--dry-run` and its cost estimate.

Every distinct prompt is listed once with the number of calls that would send it (trials x attempts: the
k attempts of a trial share their prompt) and an estimate of its tokens. Tokens are estimated without the
provider's tokenizer, by the pre-tokenizer rule OpenAI's tokenizers share (runs of letters with their
leading space, digits in groups of up to three, punctuation runs): close for these prompts, and labelled
an estimate. The cost estimate prices every call at its full prompt and at the output cap, so it is an
upper bound unless early stopping or the prompt cache save money.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from llm_erm.config import GridConfig

_PIECES = re.compile(r" ?[A-Za-z]+|\d{1,3}| ?[^\sA-Za-z\d]+|\s+")


def estimate_tokens(text: str) -> int:
    return sum(1 for _ in _PIECES.finditer(text))


@dataclass(frozen=True)
class PlannedPrompt:
    label: str  # the cell, "fn_a L20"
    prompt: str
    calls: int  # at most: trials x attempts
    tokens: int  # estimated


@dataclass
class GridPlan:
    prompts: list[PlannedPrompt] = field(default_factory=list)
    model: str | None = None  # None: a proposer that calls no model (enumerate, replay)
    output_cap: int = 0
    price: object | None = None  # llm_erm.proposers.pricing.Price (at the tier's rate), None when unpriced
    tier: str = "standard"  # standard | batch | flex

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.prompts)

    @property
    def prompt_tokens(self) -> int:
        return sum(p.calls * p.tokens for p in self.prompts)

    def estimate_usd(self) -> float | None:
        """Upper bound: every call made, at its whole prompt uncached and at the output cap."""
        if self.model is None:
            return 0.0
        if self.price is None:
            return None
        return (self.prompt_tokens * self.price.input + self.calls * self.output_cap * self.price.output) / 1e6

    def estimate_text(self) -> str:
        head = f"{len(self.prompts)} distinct prompt(s), at most {self.calls} call(s), ~{self.prompt_tokens:,} prompt tokens"
        if self.model is None:
            return f"{head}; this proposer calls no model: free"
        cost = self.estimate_usd()
        if cost is None:
            return f"{head}; {self.model} is not in the price table: cost unknown (set LLM_ERM_PRICES)"
        rate = "" if self.tier == "standard" else f" at the {self.tier} rate"
        return (f"{head}; at most ${cost:,.2f} with {self.model}{rate} (every call at the {self.output_cap:,}-token "
                "output cap; early stopping and cached input make it less)")


def plan_grid(config: GridConfig) -> GridPlan:
    """Build the datasets (they are needed for the prompts) and plan every call; spend nothing."""
    from llm_erm.datasets import build_dataset
    from llm_erm.proposers import make_proposer
    from llm_erm.proposers.prompt import build_prompt

    config = config.resolved()
    template = config.template_text()
    plan = GridPlan()
    proposer = make_proposer(config.proposer)
    if hasattr(proposer, "cost_basis"):  # a model proposer: its price (at the batch or flex rate) and cap
        basis = proposer.cost_basis()
        plan.model, plan.price, plan.output_cap = basis.model, basis.price, basis.output_cap
        plan.tier = basis.tier or "standard"
    for spec in config.dataset_specs():
        prompt = build_prompt(build_dataset(spec, Path(config.datasets_dir)), variant=config.prompt_variant,
                              template=template)
        plan.prompts.append(PlannedPrompt(f"{spec.target} L{spec.length}", prompt,
                                          config.trials * config.attempts, estimate_tokens(prompt)))
    return plan

"""The run's plan: one function turns a GridConfig into what the run will do, before it does any of it.

`plan_run(config)` is the one place a run is refused (UsageError, before any dataset, call or file): the
cells and sample sizes, the prompt template, each method's settings, each proposer's preflight and the
sandbox. It returns the work items (cells x methods x trials, in grid order) and each method label's
proposer. The engine (GridRun), the CLI and the flows all start from it.

The prompts come from it too, exactly as they are sent: `Plan.erm_prompt` (checked against the context of
every erm proposer) and `icl.test_prompts`. `dry_run(plan)` builds the datasets, lists every distinct prompt
and prices each method label's calls at its own proposer, model and rate (batch and flex at theirs).

Tokens are estimated without the provider's tokenizer, by the pre-tokenizer rule OpenAI's tokenizers share
(runs of letters with their leading space, digits in groups of up to three, punctuation runs): close for
these prompts, and labelled an estimate. The cost prices every call at its full prompt and at the output
cap, so it is an upper bound unless early stopping or the prompt cache save money.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llm_erm.config import ERM, ICL, GridConfig, MethodSpec
from llm_erm.datasets import Dataset, DatasetSpec
from llm_erm.errors import UsageError
from llm_erm.results.storage import RunPath

_PIECES = re.compile(r" ?[A-Za-z]+|\d{1,3}| ?[^\sA-Za-z\d]+|\s+")


def estimate_tokens(text: str) -> int:
    return sum(1 for _ in _PIECES.finditer(text))


# -- work items -----------------------------------------------------------------------------------
def cell_label(spec: DatasetSpec) -> str:
    return f"{spec.target} L{spec.length}"


@dataclass(frozen=True)
class Work:
    """One trial of one method on one cell."""

    method: MethodSpec
    spec: DatasetSpec  # the dataset it learns from (the cell's, or a sample-size sweep point's)
    trial: int

    @property
    def label(self) -> str:
        return self.method.resolved_label

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.label, self.spec.target, self.spec.length, self.trial)


def method_spec(method: MethodSpec, spec: DatasetSpec) -> DatasetSpec:
    """The dataset a method learns from: the cell's, or a sample-size point's (train = val = n/2)."""
    if method.n_train is None:
        return spec
    sized = replace(spec, train_size=method.n_train // 2, val_size=method.n_train // 2)
    try:
        sized.validate()
    except UsageError as exc:  # name the setting that asked for this size, not --train-size/--val-size
        raise UsageError(str(exc).replace(
            "smaller --train-size/--val-size",
            f"a smaller sample size than {method.n_train} for {method.resolved_label} (--sample-sizes, or the "
            "method's n_train), or leave this target out")) from None
    return sized


def work_items(config: GridConfig, specs: Sequence[DatasetSpec]) -> list[Work]:
    """Every trial of the grid's cells, in grid order: cell, then method, then trial."""
    return [Work(method, method_spec(method, spec), t) for spec in specs for method in config.resolved_methods()
            for t in range(1, config.trials + 1)]


# -- the plan ---------------------------------------------------------------------------------------
@dataclass
class MethodPlan:
    """One method label of the grid, ready: erm's proposer, or what another method prepared."""

    spec: MethodSpec
    proposer: Any = None  # erm: the proposer
    prepared: Any = None  # icl, trained baselines: llm_erm.engine.methods.Prepared

    @property
    def label(self) -> str:
        return self.spec.resolved_label

    def identity(self) -> dict[str, Any]:
        """What this label's requests are made with (the journal key's proposer, the rows' columns)."""
        return self.proposer.identity() if self.proposer is not None else self.prepared.identity()

    def cost_basis(self):
        """How its calls are priced (llm_erm.proposers.pricing.CostBasis); None: it calls no model."""
        from llm_erm.proposers.pricing import CostBasis

        if self.spec.method == ERM:
            if hasattr(self.proposer, "cost_basis"):
                return self.proposer.cost_basis()
            return CostBasis(None, None, 0)  # enumerate, replay: calls, but free
        if self.spec.method == ICL:
            return self.prepared.asker.cost_basis()
        return None


@dataclass
class Plan:
    """What a run will do: its id, its cells, its work items and each method label, refusals all made."""

    config: GridConfig  # resolved (the proposer kind chosen)
    run_id: str
    specs: list[DatasetSpec]
    methods: dict[str, MethodPlan]  # label -> its plan, in grid order
    work: list[Work]
    template: str | None

    @property
    def run_dir(self) -> RunPath:
        """The run's folder: a local Path, or a UPath on an object store (llm_erm.results.storage)."""
        return self.config.run_dir()

    @property
    def uses_sandbox(self) -> bool:
        return any(m.spec.method == ERM for m in self.methods.values())

    def erm_prompt(self, dataset: Dataset) -> str:
        """The erm prompt of a dataset exactly as it is sent, refused (UsageError) where an erm proposer's
        server cannot take it (too long for its context), before any call."""
        from llm_erm.proposers.prompt import build_prompt

        prompt = build_prompt(dataset, variant=self.config.prompt_variant, template=self.template)
        for method in self.methods.values():
            check = getattr(method.proposer, "check_prompt", None)
            if check is not None:
                try:
                    check(prompt)
                except UsageError as exc:
                    raise UsageError(f"{cell_label(dataset.spec)}: {exc}") from None
        return prompt


def plan_run(config: GridConfig) -> Plan:
    """The run's plan, every refusal made (UsageError naming the option): cells and sample sizes, the
    template, each method's settings and proposer, the sandbox. Writes nothing, calls no model."""
    from llm_erm.engine import methods
    from llm_erm.proposers import make_proposer

    config = config.resolved()
    specs = config.dataset_specs()
    work = work_items(config, specs)  # every sample size is possible for every cell
    template = config.template_text()
    planned: dict[str, MethodPlan] = {}
    for method in config.resolved_methods():
        if methods.get_kind(method.method).prepare is None:  # erm: the proposer is made here
            proposer = make_proposer(config.method_proposer(method))
            proposer.preflight()
            planned[method.resolved_label] = MethodPlan(method, proposer=proposer)
        else:
            planned[method.resolved_label] = MethodPlan(method, prepared=methods.prepare(config, method))
    plan = Plan(config, config.resolved_run_id(), specs, planned, work, template)
    if plan.uses_sandbox and config.sandbox == "bwrap" and not shutil.which("bwrap"):
        raise UsageError("bubblewrap (bwrap) is not installed, and candidates run only in its sandbox by default: "
                         "install it (apt-get install bubblewrap) or pass --sandbox rlimit to accept the weaker "
                         "resource-limit sandbox")
    return plan


# -- the dry run ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedPrompt:
    label: str  # the cell ("fn_a L20"), with the method label in front for icl
    prompt: str  # erm: the prompt; icl: the first of the cell's test prompts
    calls: dict[str, int]  # method label -> calls that send it (at most)
    tokens: int  # estimated, per call (icl: on average over the cell's test prompts)
    distinct: int = 1  # icl: the cell's test prompts (one per test input), of which `prompt` is the first

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass
class LabelCost:
    """One method label's calls and their price at its own proposer."""

    label: str
    basis: Any  # llm_erm.proposers.pricing.CostBasis; None: a trained baseline, no call
    calls: int = 0
    prompt_tokens: int = 0
    distinct: int = 0

    def estimate_usd(self) -> float | None:
        return 0.0 if self.basis is None else self.basis.estimate_usd(self.calls, self.prompt_tokens)

    def text(self) -> str:
        if self.basis is None:
            return "a trained baseline: no model call, free"
        head = (f"{self.distinct} distinct prompt(s), at most {self.calls} call(s), ~{self.prompt_tokens:,} prompt "
                "tokens")
        if self.basis.model is None:
            return f"{head}; this proposer calls no model: free"
        cost = self.estimate_usd()
        if cost is None:
            return f"{head}; {self.basis.model} is not in the price table: cost unknown (set LLM_ERM_PRICES)"
        rate = "" if self.basis.tier == "standard" else f" at the {self.basis.tier} rate"
        return (f"{head}; at most ${cost:,.2f} with {self.basis.model}{rate} (every call at the "
                f"{self.basis.output_cap:,}-token output cap; early stopping and cached input make it less)")


@dataclass
class GridPlan:
    """What the dry run prints: every distinct prompt with its calls, and the cost per method label."""

    prompts: list[PlannedPrompt] = field(default_factory=list)
    costs: dict[str, LabelCost] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return sum(c.calls for c in self.costs.values())

    def estimate_usd(self) -> float | None:
        costs = [c.estimate_usd() for c in self.costs.values()]
        return None if any(c is None for c in costs) else sum(costs)

    def estimate_text(self) -> str:
        if len(self.costs) == 1:
            return next(iter(self.costs.values())).text()
        lines = [f"{label}: {cost.text()}" for label, cost in self.costs.items()]
        total = self.estimate_usd()
        money = "cost unknown (a model is not in the price table)" if total is None else f"at most ${total:,.2f}"
        return "\n".join([*lines, f"total: at most {self.calls} call(s), {money}"])


def dry_run(plan: Plan) -> GridPlan:
    """Build the datasets (the prompts need them) and count, per method label, every call the run would make
    and its prompt tokens; spend nothing."""
    from llm_erm.datasets import build_dataset
    from llm_erm.methods import icl

    cfg = plan.config
    out = GridPlan(costs={label: LabelCost(label, m.cost_basis()) for label, m in plan.methods.items()})
    datasets: dict[DatasetSpec, Dataset] = {}

    def dataset(spec: DatasetSpec) -> Dataset:
        if spec not in datasets:
            datasets[spec] = build_dataset(spec, Path(cfg.datasets_dir))
        return datasets[spec]

    erm: dict[str, dict[str, Any]] = {}  # prompt text -> its cell and calls per label (erm labels share prompts)
    icl_cells: dict[tuple[str, DatasetSpec], int] = {}
    for work in plan.work:
        if work.method.method == ERM:
            prompt = plan.erm_prompt(dataset(work.spec))
            entry = erm.setdefault(prompt, {"label": cell_label(work.spec), "calls": {}})
            entry["calls"][work.label] = entry["calls"].get(work.label, 0) + cfg.attempts
        elif work.method.method == ICL:
            icl_cells[(work.label, work.spec)] = icl_cells.get((work.label, work.spec), 0) + 1
    for prompt, entry in erm.items():
        tokens = estimate_tokens(prompt)
        out.prompts.append(PlannedPrompt(entry["label"], prompt, entry["calls"], tokens))
        for label, calls in entry["calls"].items():
            cost = out.costs[label]
            cost.calls, cost.prompt_tokens, cost.distinct = (cost.calls + calls, cost.prompt_tokens + calls * tokens,
                                                             cost.distinct + 1)
    for (label, spec), trials in icl_cells.items():
        prompts = [p for _, p in icl.test_prompts(dataset(spec), plan.methods[label].prepared.settings)]
        tokens = [estimate_tokens(p) for p in prompts]
        out.prompts.append(PlannedPrompt(f"{label} {cell_label(spec)}", prompts[0], {label: trials * len(prompts)},
                                         round(sum(tokens) / len(tokens)), len(prompts)))
        cost = out.costs[label]
        cost.calls, cost.prompt_tokens, cost.distinct = (cost.calls + trials * len(prompts),
                                                         cost.prompt_tokens + trials * sum(tokens),
                                                         cost.distinct + len(prompts))
    return out


def describe(item: PlannedPrompt, several: bool) -> str:
    """The header the dry run prints above a prompt."""
    if item.distinct > 1:
        return (f"===== {item.label}: {item.distinct} distinct prompt(s), one per test input, "
                f"{item.total_calls} call(s), ~{item.tokens:,} tokens each on average; the first: =====")
    calls = ", ".join(f"{n} {label}" for label, n in item.calls.items()) + " call(s)" if several \
        else f"{item.total_calls} call(s)"
    return f"===== {item.label}: {calls}, ~{item.tokens:,} tokens each ====="

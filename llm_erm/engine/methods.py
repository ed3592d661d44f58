"""The methods besides erm, as trials of the engine: in-context learning and the trained baselines.

Each method has a `prepare` (run once when the grid opens: settings checked, extras imported, the model
endpoint checked — everything that can refuse the run) and a trial body that returns the trial's rows. A
baseline trial is one row: attempt 1, train and test accuracy, the learner's curve and settings in
`method_extra`. An icl trial is one row too, scored over its test prompts; each prompt's answer is journaled
the moment it arrives, so a killed icl trial resumes without asking again what was answered.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llm_erm.config import ERM, ICL, GridConfig, MethodSpec
from llm_erm.engine.calls import attempt_seed, request, submit
from llm_erm.errors import UsageError
from llm_erm.results.journal import sha256_text
from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET

if TYPE_CHECKING:
    from llm_erm.engine.run import Cell, GridRun
    from llm_erm.plan import Work

MAX_ANSWER_CHARS = 500  # of each icl answer kept in the row (the journal keeps them whole)
# torch's seed and thread count are process-wide: two torch learners in one process run one at a time, so
# each trial is exactly reproducible from its seed.
TORCH_LEARNERS = ("sgd", "finetune")
_TORCH_LOCK = threading.Lock()


@dataclass
class Prepared:
    """What a method needs for its trials, made once per run."""

    method: MethodSpec
    settings: dict[str, Any]
    asker: Any = None  # icl: llm_erm.methods.icl.Asker
    provider: dict[str, Any] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        return self.provider or {"provider": self.method.method, "params": self.settings}


TrialBody = Callable[["GridRun", "Cell", "Work", dict], list[dict[str, Any]]]


@dataclass(frozen=True)
class MethodKind:
    """A kind of method a grid can run (MethodSpec.method): how it is prepared and what one trial does.

    A new kind (an agent baseline, say) is one module that calls `register`; the config, the plan and the
    engine read this registry, so nothing else lists the kinds."""

    name: str
    trial: TrialBody  # (run, cell, work, identity) -> the trial's rows
    # settings checked, extras imported, endpoint checked (UsageError before any work); None: erm, whose
    # proposer the plan makes
    prepare: Callable[[GridConfig, MethodSpec], Prepared] | None = None
    calls_model: bool = False  # it takes proposer overrides and its calls are priced
    searches: bool = False  # propose k, verify, select: the erm prompt, attempts, the sandbox


KINDS: dict[str, MethodKind] = {}


def register(kind: MethodKind) -> MethodKind:
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> MethodKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UsageError(f"unknown method {name!r}: use one of {', '.join(KINDS)}") from None


def prepare(config: GridConfig, method: MethodSpec) -> Prepared:
    """What a method other than erm needs for its trials (UsageError before any work)."""
    kind = get_kind(method.method)
    assert kind.prepare is not None, f"{kind.name} is prepared by the plan"
    return kind.prepare(config, method)


def _prepare_icl(config: GridConfig, method: MethodSpec) -> Prepared:
    from llm_erm.methods import icl

    settings = icl.resolve_settings(method.settings)
    asker = icl.Asker(config.method_proposer(method), settings)
    asker.preflight()
    return Prepared(method, settings, asker, asker.identity())


def _prepare_learner(config: GridConfig, method: MethodSpec) -> Prepared:
    from llm_erm.methods import check_learner

    return Prepared(method, check_learner(method.method, method.settings))


def _erm_trial(run: GridRun, cell: Cell, work: Work, identity: dict[str, Any]) -> list[dict[str, Any]]:
    return run.erm_trial(cell, work, identity)


def trial_seed(run: GridRun, cell: Cell, work: Work) -> int:
    return attempt_seed(run.run_id, cell.dataset.dataset_id, work.trial, 0)


def _row(identity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {**identity, "attempt": 1, "selected": fields.get("status") == "ok", "stopped_early": False,
            "created_at": datetime.now(UTC), **fields}


# -- trained baselines ------------------------------------------------------------------------------
def learner_trial(run: GridRun, cell: Cell, work: Work, identity: dict[str, Any]) -> list[dict[str, Any]]:
    from llm_erm.methods import cell_data, run_learner

    prepared: Prepared = run.methods_ready[work.label]
    train, test = cell_data(cell.dataset)
    one_at_a_time = _TORCH_LOCK if work.method.method in TORCH_LEARNERS else contextlib.nullcontext()
    with one_at_a_time:
        result = run_learner(work.method.method, train, test, alphabet=cell.dataset.target.alphabet,
                             length=work.spec.length, seed=trial_seed(run, cell, work), settings=prepared.settings)
    extra = {"curve": result.curve, "settings": result.settings, "device": result.device,
             "n_params": result.n_params, "n_trainable": result.n_trainable, "train_seconds": result.train_seconds,
             "predict_seconds": result.predict_seconds, "eval_seconds": result.eval_seconds, "info": result.info,
             "predictions": "".join(map(str, result.test_predictions))}
    return [_row(identity, status="ok", train_acc=result.train_acc, test_acc=result.test_acc,
                 latency_s=result.seconds, cost_usd=0.0, n_train=result.n_train,
                 method_extra=json.dumps(extra, default=str))]


# -- in-context learning ----------------------------------------------------------------------------
def icl_trial(run: GridRun, cell: Cell, work: Work, identity: dict[str, Any]) -> list[dict[str, Any]]:
    from llm_erm.methods import icl
    from llm_erm.plan import estimate_tokens

    prepared: Prepared = run.methods_ready[work.label]
    settings, asker = prepared.settings, prepared.asker
    test = cell.dataset.split("test")
    prompts = icl.test_prompts(cell.dataset, settings)  # the dry run counts these same prompts
    chosen = [index for index, _ in prompts]
    parse = icl.PARSERS[settings["parser"]]

    def one(index: int, prompt: str) -> dict[str, Any]:
        call = request(run.run_id, work, prepared.provider, sha256_text(prompt), 1, kind="icl", test_index=index)
        answer = run.journal.lookup(call.key)
        if answer is None:
            answer = run.call(f"{run.trial_label(work)} q{index}", lambda: asker.ask(prompt, call.seed), call.key,
                              call.record)
            if isinstance(answer, str):
                return {"index": index, "error": answer}
        predicted = parse(answer["text"])
        return {"index": index, "answer": answer, "predicted": predicted,
                "truncated_prompt": answer["usage"]["prompt_tokens"] < icl.TRUNCATION_RATIO * estimate_tokens(prompt),
                "correct": predicted is not None and predicted == str(test.labels[index])}

    futures = [submit(run.waves(), one, index, prompt) for index, prompt in prompts]
    asked = [f.result() for f in futures]
    failed = [a for a in asked if "error" in a]
    answered = [a for a in asked if "answer" in a]
    usage = {name: sum(a["answer"]["usage"][name] for a in answered)
             for name in ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")}
    costs = [a["answer"]["cost_usd"] for a in answered]
    extra = {
        "api": settings["api"], "parser": settings["parser"], "settings": settings, "test_prompts": len(chosen),
        "answered": len(answered), "parsed": sum(a["predicted"] is not None for a in answered),
        "truncated_prompts": sum(a["truncated_prompt"] for a in answered), "failed_calls": len(failed),
        "predictions": "".join("-" if "answer" not in a or a["predicted"] is None else a["predicted"]
                               for a in asked),
        "answers": [{"index": a["index"], "text": a["answer"]["text"][:MAX_ANSWER_CHARS],
                     "predicted": a["predicted"]} for a in answered],
    }
    common = dict(
        cost_usd=None if any(c is None for c in costs) else sum(costs),
        latency_s=sum(a["answer"]["latency_s"] for a in answered), response_model=next(
            (a["answer"]["model"] for a in answered), None),
        truncated=any(a["answer"]["finish_reason"] == "length" for a in answered),
        finish_reason=",".join(sorted({str(a["answer"]["finish_reason"]) for a in answered})) or None,
        method_extra=json.dumps(extra, default=str), **usage,
    )
    if failed:
        budget = all(a["error"] == SKIPPED_BUDGET for a in failed)
        error = f"{len(failed)} of {len(chosen)} icl calls " + (
            "were skipped: the budget is spent" if budget else f"failed after their retries, e.g. {failed[0]['error']}")
        return [_row(identity, status=SKIPPED_BUDGET if budget else PROPOSE_ERROR, propose_error=error, **common)]
    correct = sum(a["correct"] for a in answered)
    return [_row(identity, status="ok", test_acc=correct / len(chosen), **common)]


# -- the registry: erm, icl and every trained learner of llm_erm.methods ------------------------------
def _register_builtin() -> None:
    from llm_erm.methods import LEARNERS

    register(MethodKind(ERM, _erm_trial, calls_model=True, searches=True))
    register(MethodKind(ICL, icl_trial, _prepare_icl, calls_model=True))
    for name in LEARNERS:
        register(MethodKind(name, learner_trial, _prepare_learner))


_register_builtin()

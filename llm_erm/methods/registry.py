"""The learners by method id, the check the engine runs before a grid starts, and the one entry point."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.methods import classical, finetune, sgd
from llm_erm.methods.base import LabelledData, LearnerResult, Setting, resolve_schema

EXTRAS = {
    "baselines": "pip install 'llm-erm[baselines]'",
    "torch": "pip install 'llm-erm[torch]'",
}


@dataclass(frozen=True)
class Learner:
    method: str
    description: str
    extra: str  # the optional dependency group that provides its libraries
    modules: tuple[str, ...]  # imported by check_learner
    schema: Mapping[str, Setting]
    run: Callable[..., LearnerResult]
    finalize: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # cross-key and machine checks


def _classical(method: str, description: str, modules: tuple[str, ...] = ("sklearn",)) -> Learner:
    def run(train: LabelledData, test: LabelledData, **kw: Any) -> LearnerResult:
        return classical.run_classical(method, train, test, **kw)

    return Learner(method, description, "baselines", modules, classical.schema(method), run)


LEARNERS: dict[str, Learner] = {
    learner.method: learner
    for learner in (
        _classical("xgboost", "gradient-boosted trees (xgboost)", ("sklearn", "xgboost")),
        _classical("random-forest", "random forest (scikit-learn)"),
        _classical("decision-tree", "one decision tree (scikit-learn)"),
        _classical("svm", "support-vector classifier, RBF kernel (scikit-learn)"),
        _classical("logreg", "L2 logistic regression (scikit-learn)"),
        _classical("mlp", "multi-layer perceptron, adam (scikit-learn)"),
        Learner("sgd", "a Qwen3-shaped transformer trained from scratch", "torch", ("torch", "transformers"),
                sgd.SCHEMA, sgd.run_sgd, sgd.finalize),
        Learner("finetune", "a pretrained causal LM from a local path, top blocks + head trained", "torch",
                ("torch", "transformers"), finetune.SCHEMA, finetune.run_finetune, finetune.finalize),
    )
}
METHOD_IDS: tuple[str, ...] = tuple(LEARNERS)


def get_learner(method: str) -> Learner:
    learner = LEARNERS.get(method)
    if learner is None:
        raise UsageError(f"unknown learner {method!r}: use one of {', '.join(METHOD_IDS)}")
    return learner


def check_extra(method: str) -> None:
    """UsageError naming the install command when the learner's libraries do not import."""
    learner = get_learner(method)
    for module in learner.modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            why = "is not installed"
        except Exception as exc:  # a broken install that fails while importing
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why = f"fails to import ({type(exc).__name__}: {first})"
        else:
            continue
        raise UsageError(f"{method} needs the Python package {module!r}, which {why}; "
                         f"install the extra: {EXTRAS[learner.extra]}")


def resolve_settings(method: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings a run would use: defaults filled, values checked (no imports of the extra)."""
    learner = get_learner(method)
    return resolve_schema(method, learner.schema, settings)


def check_learner(method: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Before a grid starts: the extra imports and the settings are valid here (device included).

    Returns the resolved settings (what LearnerResult.settings will hold); raises UsageError.
    """
    learner = get_learner(method)
    resolved = resolve_schema(method, learner.schema, settings)
    check_extra(method)
    return learner.finalize(resolved) if learner.finalize else resolved


def run_learner(
    method: str,
    train: LabelledData,
    test: LabelledData,
    *,
    alphabet: str,
    length: int,
    seed: int,
    settings: Mapping[str, Any] | None = None,
) -> LearnerResult:
    """Train `method` on `train` (the cell's train + val) and score it on `test` (the cell's test split)."""
    resolved = check_learner(method, settings)
    if not isinstance(train, LabelledData) or not isinstance(test, LabelledData):
        raise TypeError("train and test must be LabelledData")
    if not len(train):
        raise UsageError(f"{method}: no training data")
    if len(set(train.labels)) < 2:
        raise UsageError(f"{method}: the training data has only label {train.labels[0]}; it needs both 0 and 1")
    return get_learner(method).run(train, test, alphabet=alphabet, length=length, seed=seed, settings=resolved)

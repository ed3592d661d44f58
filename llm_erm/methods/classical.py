"""Classical learners (scikit-learn, xgboost) on per-position features (features.py).

Each is trained on the training data it is given (train + val: 200 samples at the paper's settings)
with fixed hyperparameters, or with `tune: true` by a small grid search under stratified k-fold
cross-validation on that same training data (the test split is never looked at). Every estimator
gets `random_state = seed` and one thread by default, so a run is deterministic from the seed.
svm, logreg and mlp see standardised features (fit on the training data); trees see them raw.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from llm_erm.methods.base import (
    LabelledData,
    LearnerResult,
    Setting,
    accuracy,
    boolean,
    choice,
    fraction,
    int_tuple,
    non_negative_float,
    optional_positive_int,
    positive_float,
    positive_int,
)
from llm_erm.methods.features import ENCODINGS, Featurizer

COMMON: dict[str, Setting] = {
    "features": Setting("onehot", choice(*ENCODINGS), "onehot: a column per position per symbol; ordinal: symbol index"),
    "tune": Setting(False, boolean, "grid-search the learner's main hyperparameters (GRIDS; they override the "
                    "fixed values) by stratified CV on the training data"),
    "cv_folds": Setting(5, positive_int, "folds for tune (stratified, shuffled with the seed)"),
}


SCHEMAS: dict[str, dict[str, Setting]] = {
    "xgboost": {
        "n_estimators": Setting(100, positive_int),
        "max_depth": Setting(6, positive_int),
        "learning_rate": Setting(0.3, positive_float),
        "subsample": Setting(1.0, fraction),
        "colsample_bytree": Setting(1.0, fraction),
        "min_child_weight": Setting(1.0, non_negative_float),
        "reg_lambda": Setting(1.0, non_negative_float),
        "n_jobs": Setting(1, positive_int, "threads"),
    },
    "random-forest": {
        "n_estimators": Setting(100, positive_int),
        "max_depth": Setting(None, optional_positive_int, "null = grow until pure"),
        "min_samples_leaf": Setting(1, positive_int),
        "max_features": Setting("sqrt", choice("sqrt", "log2", None), "features tried per split"),
        "n_jobs": Setting(1, positive_int, "threads"),
    },
    "decision-tree": {
        "max_depth": Setting(None, optional_positive_int, "null = grow until pure"),
        "min_samples_leaf": Setting(1, positive_int),
        "criterion": Setting("gini", choice("gini", "entropy", "log_loss")),
    },
    "svm": {
        "C": Setting(1.0, positive_float),
        "kernel": Setting("rbf", choice("rbf", "linear", "poly", "sigmoid")),
        "gamma": Setting("scale", choice("scale", "auto")),
    },
    "logreg": {
        "C": Setting(1.0, positive_float, "inverse L2 strength"),
        "max_iter": Setting(2000, positive_int),
    },
    "mlp": {
        "hidden_layer_sizes": Setting((100,), int_tuple),
        "alpha": Setting(1e-4, non_negative_float, "L2 penalty"),
        "learning_rate_init": Setting(1e-3, positive_float),
        "max_iter": Setting(1000, positive_int, "epochs of adam"),
        "early_stopping": Setting(False, boolean, "hold out 10% of the training data to stop early"),
    },
}

# Grids for tune: small, as the fork's validation-selected baselines were.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "xgboost": {"n_estimators": [100, 300], "max_depth": [3, 6], "learning_rate": [0.05, 0.3],
                "subsample": [0.8, 1.0]},
    "random-forest": {"n_estimators": [100, 300], "max_depth": [8, None], "min_samples_leaf": [1, 5]},
    "decision-tree": {"max_depth": [3, 5, 8, None], "min_samples_leaf": [1, 5, 20], "criterion": ["gini", "entropy"]},
    "svm": {"C": [0.1, 1.0, 10.0], "kernel": ["rbf", "linear"]},
    "logreg": {"C": [0.01, 0.1, 1.0, 10.0]},
    "mlp": {"hidden_layer_sizes": [(64,), (128,), (64, 32)], "alpha": [1e-4, 1e-2, 1.0]},
}

SCALED = {"svm", "logreg", "mlp"}


def schema(method: str) -> dict[str, Setting]:
    return {**SCHEMAS[method], **COMMON}


def _estimator(method: str, settings: dict[str, Any], seed: int) -> Any:
    """The unfitted estimator; imports happen here so the registry stays importable without the extra."""
    hp = {k: v for k, v in settings.items() if k in SCHEMAS[method]}
    if method == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            **hp, random_state=seed, tree_method="hist", objective="binary:logistic",
            eval_metric="logloss", verbosity=0,
        )
    if method == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**hp, random_state=seed)
    if method == "decision-tree":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(**hp, random_state=seed)
    if method == "svm":
        from sklearn.svm import SVC

        return SVC(**hp, random_state=seed)
    if method == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(**hp, random_state=seed)
    if method == "mlp":
        from sklearn.neural_network import MLPClassifier

        hp["hidden_layer_sizes"] = tuple(hp["hidden_layer_sizes"])
        return MLPClassifier(**hp, random_state=seed)
    raise KeyError(method)


def _model_facts(method: str, model: Any) -> tuple[int | None, dict[str, Any]]:
    """(n_params, facts) of a fitted estimator."""
    facts: dict[str, Any] = {}
    n_params: int | None = None
    if method == "mlp":
        n_params = sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_)
        facts["epochs_run"] = int(model.n_iter_)
    elif method == "logreg":
        n_params = int(model.coef_.size + model.intercept_.size)
    elif method == "decision-tree":
        facts.update(nodes=int(model.tree_.node_count), depth=int(model.get_depth()), leaves=int(model.get_n_leaves()))
    elif method == "random-forest":
        facts["nodes"] = int(sum(t.tree_.node_count for t in model.estimators_))
    elif method == "svm":
        facts["support_vectors"] = int(model.support_vectors_.shape[0])
    elif method == "xgboost":
        facts["trees"] = int(model.get_booster().num_boosted_rounds())
    return n_params, facts


def run_classical(
    method: str, train: LabelledData, test: LabelledData, *, alphabet: str, length: int, seed: int,
    settings: dict[str, Any],
) -> LearnerResult:
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    featurizer = Featurizer(alphabet, length, settings["features"]).fit(train.inputs)
    x_train = featurizer.transform(train.inputs)
    y_train = np.asarray(train.labels, dtype=np.int64)
    estimator = _estimator(method, settings, seed)
    if method in SCALED:
        estimator = make_pipeline(StandardScaler(), estimator)
    facts: dict[str, Any] = {"features": featurizer.describe()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if settings["tune"]:
            model = _tune(method, estimator, x_train, y_train, seed, settings, facts)
        else:
            model = estimator.fit(x_train, y_train)
    facts["converged"] = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    train_pred = model.predict(x_train)
    train_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    test_pred = model.predict(featurizer.transform(test.inputs)) if len(test) else np.zeros(0, dtype=np.int64)
    predict_seconds = time.perf_counter() - t1

    final = model.steps[-1][1] if hasattr(model, "steps") else model
    n_params, model_facts = _model_facts(method, final)
    facts.update(model_facts)
    facts["versions"] = _versions(method)
    predictions = [int(p) for p in test_pred]
    return LearnerResult(
        method=method,
        train_acc=accuracy((int(p) for p in train_pred), list(train.labels)),
        test_acc=accuracy(predictions, list(test.labels)),
        train_seconds=train_seconds,
        predict_seconds=predict_seconds,
        settings=dict(settings),
        device="cpu",
        n_train=len(train),
        n_test=len(test),
        n_params=n_params,
        n_trainable=n_params,
        info=facts,
        test_predictions=predictions,
    )


def _tune(method: str, estimator: Any, x: Any, y: Any, seed: int, settings: dict[str, Any], facts: dict) -> Any:
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    folds = settings["cv_folds"]
    smallest = int(min((y == 0).sum(), (y == 1).sum()))
    if folds < 2 or folds > smallest:
        from llm_erm.errors import UsageError

        raise UsageError(f"{method}: cv_folds must be between 2 and {smallest} (the smaller class), got {folds}")
    prefix = "" if not hasattr(estimator, "steps") else f"{estimator.steps[-1][0]}__"
    grid = {prefix + k: v for k, v in GRIDS[method].items()}
    search = GridSearchCV(
        estimator, grid, cv=StratifiedKFold(folds, shuffle=True, random_state=seed), n_jobs=1, refit=True,
    )
    search.fit(x, y)
    facts["tuned"] = {k.removeprefix(prefix): _plain(v) for k, v in search.best_params_.items()}
    facts["cv_accuracy"] = float(search.best_score_)
    return search.best_estimator_


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _versions(method: str) -> dict[str, str]:
    import sklearn

    out = {"scikit-learn": sklearn.__version__}
    if method == "xgboost":
        import xgboost

        out["xgboost"] = xgboost.__version__
    return out


RUNNERS: dict[str, Callable[..., LearnerResult]] = {m: run_classical for m in SCHEMAS}

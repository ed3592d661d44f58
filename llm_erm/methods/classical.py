"""Classical learners (scikit-learn, xgboost) on per-position features (features.py).

Two protocols (the `protocol` setting, `--baseline-protocol` on `run`):

- `fair` (the default): trained on the training data it is given (train + val: 200 samples at the paper's
  settings, as many as erm sees) on one-hot features with fixed hyperparameters, or with `tune: true` by a
  small grid search under stratified k-fold cross-validation on that same data. One model, seeded by the
  trial's seed. svm, logreg and mlp see standardised features; trees see them raw.
- `paper`: the official baseline runner's (DLFundamentals/LLM_PV program_synthesis/baseline_runner.py,
  the one behind the paper's table): fit on the train split only (100 examples; val unused), upstream's
  digit codes as features (features.py "upstream"), `GridSearchCV(cv=5)` (unshuffled stratified folds,
  accuracy) over upstream's grids (PAPER_GRIDS), no scaling, and `model_seeds` models seeded
  `seed_base`, `seed_base + 1`, ... (42..51 upstream); the test accuracy is their mean, the spread
  (population std, as upstream's np.std) and every seed's accuracy are in the result's info. logreg and
  mlp have no upstream grid: under `paper` they use GRIDS (ours), and info says so.

The test split is never looked at for fitting or selection. Every estimator gets one thread by default, so
a run is deterministic from its seeds.
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
    non_negative_int,
    optional_positive_int,
    positive_float,
    positive_int,
)
from llm_erm.methods.features import ENCODINGS, Featurizer

PROTOCOLS = ("fair", "paper")

COMMON: dict[str, Setting] = {
    "protocol": Setting("fair", choice(*PROTOCOLS), "fair: train + val, features as set, one model; paper: the "
                        "official runner's (train split only, upstream features and grids, cv=5, several seeds)"),
    "model_seeds": Setting(10, positive_int, "paper protocol: models per trial, seeded seed_base, seed_base+1, ..."),
    "seed_base": Setting(42, non_negative_int, "paper protocol: the first model seed (upstream: 42)"),
    "features": Setting("onehot", choice(*ENCODINGS), "onehot: a column per position per symbol; ordinal: symbol "
                        "index; upstream: the official runner's codes (the paper protocol always uses these)"),
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

# The official runner's grids (get_param_grids), for the paper protocol.
PAPER_GRIDS: dict[str, dict[str, list[Any]]] = {
    "svm": {"C": [0.1, 1, 10, 100], "gamma": ["scale", "auto", 0.001, 0.01, 0.1], "kernel": ["rbf", "sigmoid"]},
    "random-forest": {"n_estimators": [64, 128, 256], "max_depth": [5, 10, 15, None],
                      "min_samples_split": [2, 5, 10]},
    "decision-tree": {"max_depth": [5, 10, 15, None], "min_samples_split": [2, 5, 10],
                      "min_samples_leaf": [1, 2, 4], "criterion": ["gini", "entropy"]},
    "xgboost": {"n_estimators": [100, 128, 256], "max_depth": [5, 6, 7], "learning_rate": [0.1, 0.3],
                "subsample": [0.8, 1.0], "colsample_bytree": [0.8, 1.0]},
}
PAPER_CV = 5

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


def _paper_estimator(method: str, settings: dict[str, Any], seed: int) -> Any:
    """The official runner's base model (get_base_models): library defaults, the seed, xgboost on hist."""
    if method == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(booster="gbtree", random_state=seed, objective="binary:logistic", verbosity=0,
                             tree_method="hist", n_jobs=settings["n_jobs"])
    if method == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, n_jobs=settings["n_jobs"])
    if method == "decision-tree":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(random_state=seed)
    if method == "svm":
        from sklearn.svm import SVC

        return SVC(random_state=seed)
    # No upstream counterpart: ours, scaled as under `fair`.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), _estimator(method, settings, seed))


def run_paper(
    method: str, train: LabelledData, test: LabelledData, *, alphabet: str, length: int, settings: dict[str, Any],
) -> LearnerResult:
    """The paper protocol (module docstring): train split only, upstream features and grids, several seeds."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    t0 = time.perf_counter()
    fit_on = train.first_part()
    featurizer = Featurizer(alphabet, length, "upstream").fit(fit_on.inputs)
    x_train = featurizer.transform(fit_on.inputs)
    y_train = np.asarray(fit_on.labels, dtype=np.int64)
    smallest = int(min((y_train == 0).sum(), (y_train == 1).sum()))
    if smallest < PAPER_CV:
        from llm_erm.errors import UsageError

        raise UsageError(f"{method}: the paper protocol's cv={PAPER_CV} needs >= {PAPER_CV} training examples of "
                         f"each label, the train split has {smallest}")
    x_test = featurizer.transform(test.inputs) if len(test) else None
    upstream = method in PAPER_GRIDS
    grid_source = PAPER_GRIDS if upstream else GRIDS
    seeds = [settings["seed_base"] + i for i in range(settings["model_seeds"])]
    per_seed: list[dict[str, Any]] = []
    first_predictions: list[int] = []
    train_accs: list[float] = []
    predict_seconds = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for model_seed in seeds:
            estimator = _paper_estimator(method, settings, model_seed)
            prefix = "" if not hasattr(estimator, "steps") else f"{estimator.steps[-1][0]}__"
            grid = {prefix + k: v for k, v in grid_source[method].items()}
            # cv=5 on a classifier is StratifiedKFold(5) without shuffling, as upstream's GridSearchCV(cv=5).
            search = GridSearchCV(estimator, grid, cv=StratifiedKFold(PAPER_CV), scoring="accuracy", n_jobs=1)
            search.fit(x_train, y_train)
            model = search.best_estimator_
            train_accs.append(accuracy((int(p) for p in model.predict(x_train)), list(fit_on.labels)))
            t1 = time.perf_counter()
            predictions = [int(p) for p in model.predict(x_test)] if x_test is not None else []
            predict_seconds += time.perf_counter() - t1
            if not first_predictions:
                first_predictions = predictions
            per_seed.append({"seed": model_seed, "test_acc": accuracy(predictions, list(test.labels)),
                             "cv_accuracy": float(search.best_score_),
                             "tuned": {k.removeprefix(prefix): _plain(v) for k, v in search.best_params_.items()}})
    test_accs = [r["test_acc"] for r in per_seed]
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    n_params, model_facts = _model_facts(method, final)
    facts: dict[str, Any] = {
        "features": featurizer.describe(), "protocol": "paper", "grid": "upstream" if upstream else
        "ours (the official runner has no grid for this method)", "cv_folds": PAPER_CV,
        "fit_examples": len(fit_on), "seeds": seeds, "per_seed": per_seed,
        "test_acc_mean": float(np.mean(test_accs)), "test_acc_std": float(np.std(test_accs)),
        "predictions_seed": seeds[0], "last_model": model_facts,
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "versions": _versions(method),
    }
    return LearnerResult(
        method=method, train_acc=float(np.mean(train_accs)), test_acc=float(np.mean(test_accs)),
        train_seconds=time.perf_counter() - t0 - predict_seconds, predict_seconds=predict_seconds,
        settings=dict(settings), device="cpu", n_train=len(fit_on), n_test=len(test), n_params=n_params,
        n_trainable=n_params, info=facts, test_predictions=first_predictions,
    )


def run_classical(
    method: str, train: LabelledData, test: LabelledData, *, alphabet: str, length: int, seed: int,
    settings: dict[str, Any],
) -> LearnerResult:
    if settings["protocol"] == "paper":
        return run_paper(method, train, test, alphabet=alphabet, length=length, settings=settings)
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

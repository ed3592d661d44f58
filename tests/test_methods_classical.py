"""Classical learners on per-position features: planted rules are learned, parity is not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from methods_helpers import FIRST_BIT, cell

from llm_erm.errors import UsageError
from llm_erm.methods import LabelledData, check_learner, run_learner
from llm_erm.methods.features import Featurizer

CLASSICAL = ("xgboost", "random-forest", "decision-tree", "svm", "logreg", "mlp")


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("methods-datasets")


@pytest.mark.parametrize("method", CLASSICAL)
def test_planted_first_bit_is_learned(datasets_dir, method):
    train, test, alphabet = cell(datasets_dir, FIRST_BIT, 20, test_size=2000)
    result = run_learner(method, train, test, alphabet=alphabet, length=20, seed=42)
    assert result.n_train == 200 and result.n_test == 2000
    assert result.train_acc >= 0.99
    assert result.test_acc >= 0.99, f"{method} test accuracy {result.test_acc} on the first-bit rule"
    assert result.curve == [] and result.device == "cpu"
    assert result.settings == check_learner(method)  # the defaults, all recorded
    assert len(result.test_predictions) == 2000 and set(result.test_predictions) <= {0, 1}
    # the reported accuracy is the predictions' accuracy
    assert result.test_acc == np.mean(np.array(result.test_predictions) == np.array(test.labels))
    row = json.loads(json.dumps(result.to_dict()))  # what a ledger stores: plain JSON
    assert "test_predictions" not in row and row["seconds"] == pytest.approx(result.train_seconds + result.predict_seconds)


@pytest.mark.parametrize("method", CLASSICAL)
def test_parity_stays_at_chance(datasets_dir, method):
    train, test, alphabet = cell(datasets_dir, "fn_a", 50)
    result = run_learner(method, train, test, alphabet=alphabet, length=50, seed=42)
    assert result.n_test == 10_000
    assert abs(result.test_acc - 0.5) <= 0.04, f"{method} got {result.test_acc} on full parity"


def test_trees_memorise_parity_but_do_not_generalise(datasets_dir):
    train, test, alphabet = cell(datasets_dir, "fn_a", 50)
    result = run_learner("decision-tree", train, test, alphabet=alphabet, length=50, seed=42)
    assert result.train_acc == 1.0 and result.test_acc < 0.56


def test_deterministic_from_the_seed(datasets_dir):
    train, test, alphabet = cell(datasets_dir, "fn_g", 50)
    runs = [run_learner("random-forest", train, test, alphabet=alphabet, length=50, seed=s) for s in (1, 1, 2)]
    assert runs[0].test_predictions == runs[1].test_predictions
    assert runs[0].test_predictions != runs[2].test_predictions


def test_tune_searches_by_cross_validation_on_train_only(datasets_dir):
    train, test, alphabet = cell(datasets_dir, FIRST_BIT, 20, test_size=2000)
    result = run_learner("decision-tree", train, test, alphabet=alphabet, length=20, seed=3, settings={"tune": True})
    assert set(result.info["tuned"]) == {"max_depth", "min_samples_leaf", "criterion"}
    assert result.info["cv_accuracy"] >= 0.99 and result.test_acc >= 0.99
    with pytest.raises(UsageError, match="cv_folds"):
        run_learner("logreg", train, test, alphabet=alphabet, length=20, seed=3, settings={"tune": True, "cv_folds": 500})


def test_decimal_digits_one_hot_or_ordinal():
    inputs = ["09", "10", "99"]
    onehot = Featurizer("decimal", 2).fit(inputs)
    x = onehot.transform(inputs)
    assert x.shape == (3, 20) and onehot.names[9] == "x0=9"
    assert x[0].nonzero()[0].tolist() == [0, 19]  # '0' at position 0, '9' at position 1
    ordinal = Featurizer("decimal", 2, "ordinal").fit(inputs)
    assert ordinal.transform(inputs).tolist() == [[0, 9], [1, 0], [9, 9]]
    # binary: one column per position, the bit itself
    bits = Featurizer("binary", 3).fit(["011"])
    assert bits.transform(["011", "100"]).tolist() == [[0, 1, 1], [1, 0, 0]]
    # a shorter input leaves its missing positions at zero; an unknown symbol too
    assert bits.transform(["1", "1x1"]).tolist() == [[1, 0, 0], [1, 0, 1]]


def test_tabular_rows_numeric_and_one_hot():
    rows = [{"age": 30, "colour": "red", "income": None}, {"age": 50.5, "colour": "blue", "income": 3},
            {"age": "41", "colour": None, "income": 5}]
    f = Featurizer("tabular", 3).fit(rows)
    assert f.numeric == ["age", "income"] and f.categories == {"colour": ["?", "blue", "red"]}
    x = f.transform(rows + [{"age": 1, "colour": "green"}])
    names = f.names
    assert names == ["age", "colour=?", "colour=blue", "colour=red", "income"]
    assert x[:, 0].tolist() == [30, 50.5, 41, 1]
    assert x[0, 4] == 4.0  # missing income -> the training median of 3 and 5
    assert x[3, 1:4].tolist() == [0, 0, 0]  # a category unseen in training
    with pytest.raises(UsageError, match="all strings or all dicts"):
        Featurizer("tabular", 3).fit(["01", {"a": 1}])


@pytest.mark.parametrize("method", ("xgboost", "logreg", "decision-tree"))
def test_tabular_rule_learned_from_dict_rows(method):
    rng = np.random.default_rng(0)

    def rows(n):
        out, labels = [], []
        for _ in range(n):
            age = float(rng.integers(18, 90))
            colour = str(rng.choice(["red", "green", "blue"]))
            out.append({"age": age, "colour": colour, "noise": float(rng.normal())})
            labels.append(int(age > 50 and colour != "green"))
        return LabelledData(out, labels)

    result = run_learner(method, rows(400), rows(2000), alphabet="tabular", length=3, seed=0)
    assert result.info["features"]["numeric_columns"] == 2
    assert result.test_acc >= (0.97 if method != "logreg" else 0.85)

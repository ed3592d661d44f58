"""The classical baselines under the paper's protocol (the official runner's) beside `fair`, and how a grid asks
for it (--baseline-protocol, --preset paper-table)."""

from __future__ import annotations

import numpy as np
import pytest
from methods_helpers import FIRST_BIT, cell

from llm_erm.config import GridConfig
from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.errors import UsageError
from llm_erm.methods import LabelledData, cell_data, check_learner, run_learner
from llm_erm.methods.classical import PAPER_GRIDS
from llm_erm.methods.features import Featurizer
from llm_erm.presets import preset_fields


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("paper-protocol-datasets")


def test_paper_protocol_fits_the_train_split_only_with_several_seeds(datasets_dir):
    train, test, alphabet = cell(datasets_dir, FIRST_BIT, 20, test_size=400)
    # svm: upstream's smallest grid (40 points), so the test stays fast
    result = run_learner("svm", train, test, alphabet=alphabet, length=20, seed=7,
                         settings={"protocol": "paper", "model_seeds": 2})
    info = result.info
    assert result.n_train == 100 and info["fit_examples"] == 100  # the train split, not train + val
    assert info["seeds"] == [42, 43] and len(info["per_seed"]) == 2  # upstream's seeds, not the trial's
    accs = [s["test_acc"] for s in info["per_seed"]]
    assert result.test_acc == pytest.approx(np.mean(accs)) and info["test_acc_std"] == pytest.approx(np.std(accs))
    assert result.test_acc >= 0.9  # a planted rule is still learned (svm: 0.97)
    assert info["grid"] == "upstream" and info["cv_folds"] == 5 and info["features"]["encoding"] == "upstream"
    assert set(info["per_seed"][0]["tuned"]) == set(PAPER_GRIDS["svm"])
    assert result.settings["protocol"] == "paper"  # recorded with the settings (the ledger's method_extra)
    # the first seed's predictions, and their accuracy is that seed's
    assert np.mean(np.array(result.test_predictions) == np.array(test.labels)) == accs[0]


def test_fair_stays_the_default_and_records_its_protocol(datasets_dir):
    train, test, alphabet = cell(datasets_dir, FIRST_BIT, 20, test_size=400)
    result = run_learner("decision-tree", train, test, alphabet=alphabet, length=20, seed=7)
    assert result.settings["protocol"] == "fair" and result.n_train == 200
    assert check_learner("xgboost")["protocol"] == "fair"
    with pytest.raises(UsageError, match="protocol"):
        check_learner("xgboost", {"protocol": "upstream"})


def test_upstream_features_code_edges_as_the_official_runner():
    f = Featurizer("edges", 12, "upstream").fit(["u07v31u31v02"])
    assert f.transform(["u07v31u31v02"]).tolist() == [[10, 0, 7, 11, 3, 1, 10, 3, 1, 11, 0, 2]]


def test_paper_protocol_needs_five_of_each_label():
    tiny = LabelledData.concat(LabelledData(["01", "10", "00", "11"], [0, 1, 0, 1]),
                               LabelledData(["01", "10"], [0, 1]))
    with pytest.raises(UsageError, match="cv=5"):
        run_learner("decision-tree", tiny, tiny, alphabet="binary", length=2, seed=0, settings={"protocol": "paper"})


def test_baseline_protocol_reaches_every_classical_method_and_the_run_id():
    fair = GridConfig.from_options(methods=["erm", "xgboost", {"method": "svm", "settings": {"protocol": "fair"}}])
    paper = GridConfig.from_options(methods=["erm", "xgboost", {"method": "svm", "settings": {"protocol": "fair"}}],
                                    baseline_protocol="paper")
    assert [m.settings for m in paper.methods] == [{}, {"protocol": "paper"}, {"protocol": "fair"}]  # own wins
    assert fair.resolved_run_id() != paper.resolved_run_id()
    # fair adds nothing: the default run ids are what they were before the option existed
    assert GridConfig.from_options(methods=["xgboost"]).methods[0].settings == {}


def test_preset_paper_table_is_the_papers_grid_and_options_win():
    config = GridConfig.from_options(preset="paper-table")
    assert config.functions == ["fn_a", "fn_b", "fn_c", "fn_d", "fn_e", "fn_f", "fn_g", "fn_h", "fn_j", "fn_k",
                                "fn_v", "fn_aa", "fn_l"]
    assert config.lengths == [100] and config.train_size == config.val_size == 100
    assert [m.method for m in config.methods] == ["erm", "xgboost", "sgd"]
    assert config.methods[1].settings == {"protocol": "paper"}
    assert GridConfig.from_options(preset="paper-table").resolved_run_id() == config.resolved_run_id()  # resumable
    assert GridConfig.from_options(preset="paper-table", functions=["fn_g"]).functions == ["fn_g"]
    with pytest.raises(UsageError, match="unknown preset"):
        preset_fields("nope")


def _paper_xgboost(datasets_dir, target: str, seeds: int) -> float:
    dataset = build_dataset(DatasetSpec(target, 100), datasets_dir)  # the default data: 100/100/10000, seed 42
    train, test = cell_data(dataset)
    result = run_learner("xgboost", train, test, alphabet=dataset.target.alphabet, length=100, seed=0,
                         settings={"protocol": "paper", "model_seeds": seeds})
    assert result.n_train == 100 and result.n_test == 10_000
    return 100 * result.test_acc


# What the paper reports, and what the same protocol gives on upstream's own data (the upstream generators run
# unchanged, 10 model seeds: notes/upstream-data-and-baselines.md, 2026-12-04).
REFERENCE = {"fn_g": {"paper": 83.6, "upstream_data": 81.5}, "fn_v": {"paper": 59.3, "upstream_data": 55.6}}


# Each model seed is a 72-point grid x 5 folds of xgboost (~17 s of CPU, minutes under load): 2 seeds, slow.
@pytest.mark.slow
def test_paper_protocol_xgboost_on_fn_v_is_the_papers_number(datasets_dir):
    assert abs(_paper_xgboost(datasets_dir, "fn_v", 2) - REFERENCE["fn_v"]["paper"]) <= 5  # measured 54.8


@pytest.mark.slow
def test_paper_protocol_xgboost_on_fn_g_is_upstreams_number(datasets_dir):
    # On our default draw (seed 42) the protocol gives 77.5 (3 seeds): 6.1 below the paper's 83.6, 4.0 below the
    # same protocol on upstream's own draw. The distributions are the same (test_datasets_upstream.py; a fixed
    # xgboost over 12 draws each: ours 77.3, upstream's 74.8 on average): the gap to the paper is the draw of
    # 100 training examples (upstream's draws give 80.9, 82.9, 85.4 for base seeds 42-44), so this asserts the
    # reproduction of upstream's protocol-on-its-data number, and the report says the paper's band is missed.
    assert abs(_paper_xgboost(datasets_dir, "fn_g", 2) - REFERENCE["fn_g"]["upstream_data"]) <= 5

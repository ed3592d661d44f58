"""Sample-size sweeps come from the real store: train = val = n/2, leak-free, refused when impossible."""

from __future__ import annotations

import pytest

from llm_erm.errors import UsageError
from llm_erm.methods import SWEEP_SIZES, build_sweep, cell_data, sweep_specs


def test_sweep_builds_leak_free_stores_up_to_100k(tmp_path):
    specs = sweep_specs("fn_a", 50)
    assert SWEEP_SIZES == (200, 1_000, 10_000, 100_000)
    assert [(s.train_size, s.val_size, s.test_size) for s in specs] == [
        (100, 100, 10_000), (500, 500, 10_000), (5_000, 5_000, 10_000), (50_000, 50_000, 10_000)]
    assert specs[0].derived_seed == specs[0].__class__("fn_a", 50).derived_seed  # n=200 is the default cell
    for spec, dataset in zip(specs, build_sweep(specs, tmp_path), strict=True):
        train, test = cell_data(dataset)
        n = spec.train_size + spec.val_size
        assert len(train) == n and len(test) == 10_000
        assert sum(train.labels) == n // 2 and sum(test.labels) == 5_000
        assert len(set(train.inputs)) == n  # distinct training inputs
        assert not set(train.inputs) & set(test.inputs)  # no test input was trained on


def test_impossible_sweep_sizes_are_refused_before_work():
    with pytest.raises(UsageError, match=r"palindrome\) at L=20 has only 1024 distinct inputs with label 1"):
        sweep_specs("fn_g", 20, sizes=[200, 10_000])
    with pytest.raises(UsageError, match="sample size 1002 must be a multiple of 4"):
        sweep_specs("fn_a", 50, sizes=[1002])

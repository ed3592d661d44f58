"""Our default data is the paper's distribution: class-conditional statistics against the upstream generators,
fn_v without its last-digit leak, fn_g's negatives and variants, and the targets we did not change unchanged.

tests/data/upstream_class_stats.json was measured by benchmarks/measure_upstream.py from the upstream
generators run unchanged (its docstring says how); tests/data/unchanged_store_digests.json from main before
generator version 2.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from llm_erm.datasets import DatasetSpec, build_dataset, make_specs
from llm_erm.datasets.generators import class_capacity
from llm_erm.datasets.shortcuts import SHORTCUTS, class_stats, shortcut_accuracy, shortcut_table
from llm_erm.datasets.store import generate
from llm_erm.datasets.targets import get_target, palindrome
from llm_erm.errors import UsageError

DATA = Path(__file__).parent / "data"
UPSTREAM = json.loads((DATA / "upstream_class_stats.json").read_text())["cases"]
UNCHANGED = json.loads((DATA / "unchanged_store_digests.json").read_text())["cases"]


def _rows(spec: DatasetSpec) -> tuple[list[str], list[int]]:
    files, _ = generate(spec)
    lines = [line for split in ("train", "val", "test") for line in files[split].decode().splitlines()]
    pairs = [line.rpartition(" -> ") for line in lines]
    return [x for x, _, _ in pairs], [int(y) for _, _, y in pairs]


def _tolerance(name: str, value: float, n_per_class: int) -> float:
    """Four standard errors of a difference of two independent estimates (fractions), or 10% for means."""
    if name in ("mismatched_pairs", "distinct_vertices"):
        return 0.1 * max(1.0, value)
    p = min(max(value, 0.01), 0.99)
    return 4 * math.sqrt(2 * p * (1 - p) / n_per_class)


@pytest.mark.parametrize("case", sorted(UPSTREAM))
def test_default_data_matches_upstream_class_statistics(case):
    target_id, length, *variant = case.split("|")  # a third field: the variant of ours that is upstream's
    upstream = UPSTREAM[case]
    spec = DatasetSpec(target_id, int(length), 100, 100, 2000, variant=variant[0] if variant else None)
    inputs, labels = _rows(spec)
    ours = class_stats(spec.target_obj.alphabet, inputs, labels)
    for label, stats in upstream["class_stats"].items():
        for name, value in stats.items():
            tol = _tolerance(name, value, upstream["n"] // 2)
            assert abs(ours[label][name] - value) <= tol, (case, label, name, ours[label][name], value)
    ours_shortcuts = shortcut_table(spec.target_obj.alphabet, inputs, labels)
    for name, value in upstream["shortcuts"].items():
        assert abs(ours_shortcuts[name] - value) <= 0.05, (case, name, ours_shortcuts[name], value)


@pytest.mark.parametrize("length", [20, 50, 100])
def test_fn_v_last_digit_is_at_chance(length):
    inputs, labels = _rows(DatasetSpec("fn_v", length, 100, 100, 2000))
    assert shortcut_accuracy(inputs, labels, lambda x: x[-1]) <= 0.6
    assert {x[-1] for x in inputs} <= set("0468")  # both classes are odd + 47 (or 2 + 47 = 49: never 2 digits)


def test_fn_g_negatives_default_near_miss_only_at_20_and_never_palindromes():
    stats20 = class_stats("binary", *_rows(DatasetSpec("fn_g", 20, 100, 100, 2000)))
    assert stats20["0"]["one_mismatch_share"] == 1.0  # LLM_ERM: near misses at L=20
    for length in (25, 50):
        inputs, labels = _rows(DatasetSpec("fn_g", length, 100, 100, 2000))
        assert class_stats("binary", inputs, labels)["0"]["one_mismatch_share"] < 0.05  # uniform elsewhere
        assert all(palindrome(x) == y for x, y in zip(inputs, labels, strict=True))


@pytest.mark.parametrize("length", [21, 25, 50])
def test_fn_g_variants_enter_the_id_and_every_negative_is_a_non_palindrome(length, tmp_path):
    default = DatasetSpec("fn_g", length, 100, 100, 2000)
    near = DatasetSpec("fn_g", length, 100, 100, 2000, variant="near-miss")
    mixed = DatasetSpec("fn_g", length, 100, 100, 2000, variant="mixed")
    assert len({default.dataset_id, near.dataset_id, mixed.dataset_id}) == 3
    assert len({s.store_path(tmp_path) for s in (default, near, mixed)}) == 3
    inputs, labels = _rows(near)
    assert all(palindrome(x) == y for x, y in zip(inputs, labels, strict=True))  # odd L: no mislabelled middle flip
    assert class_stats("binary", inputs, labels)["0"]["one_mismatch_share"] == 1.0
    share = class_stats("binary", *_rows(mixed))["0"]["one_mismatch_share"]
    assert 0.35 < share < 0.65
    built = build_dataset(near, tmp_path)
    assert built.meta["variant"] == "near-miss" and "near misses" in built.meta["sampling"]


def test_variant_is_refused_before_work_where_it_does_not_exist():
    with pytest.raises(UsageError, match="no sampling variant 'near-miss'"):
        DatasetSpec("fn_a", 20, variant="near-miss").validate()
    with pytest.raises(UsageError, match="variants: near-miss, mixed"):
        DatasetSpec("fn_g", 20, variant="nearmiss").validate()
    specs = make_specs(["fn_g", "fn_a"], [20], variants={"palindrome": "mixed"})
    assert [s.variant for s in specs] == ["mixed", None]


def test_near_miss_capacity_is_exact_at_small_length():
    # L=6: 8 palindromes x 3 flippable positions = 24 near misses; enumerate what the sampler can reach.
    from itertools import product

    pals = ["".join(h) + "".join(h)[::-1] for h in product("01", repeat=3)]
    near = {p[:i] + ("1" if p[i] == "0" else "0") + p[i + 1:] for p in pals for i in range(3)}
    assert class_capacity(get_target("fn_g"), 6, "near-miss") == (len(near), 8) == (24, 8)
    assert class_capacity(get_target("fn_g"), 6) == (64 - 8, 8)


@pytest.mark.parametrize("case", sorted(UNCHANGED))
def test_unchanged_targets_keep_their_ids_and_bytes(case):
    target_id, length = case.split("|")
    pinned = UNCHANGED[case]
    spec = DatasetSpec(target_id, int(length), 100, 100, 2000)
    assert spec.dataset_id == pinned["dataset_id"]
    assert DatasetSpec(target_id, int(length)).dataset_id == pinned["default_id"]
    files, _ = generate(spec)
    assert hashlib.sha256(b"".join(files[s] for s in ("train", "val", "test"))).hexdigest() == pinned["sha256"]


def test_changed_targets_have_new_ids():
    # Stores written by generator version 1 for fn_g / fn_v are never reused as the new default.
    from llm_erm.datasets.store import generator_version

    assert generator_version("fn_g") == generator_version("fn_v") == "2"
    assert generator_version("fn_a") == "1"


def test_duplicates_allow_the_papers_n10_sets_and_say_so(tmp_path):
    with pytest.raises(UsageError, match="distinct inputs"):
        DatasetSpec("fn_g", 10).validate()  # 32 palindromes: refused unless repeats are allowed
    spec = DatasetSpec("fn_g", 10, test_size=1000, duplicates=True)
    assert spec.dataset_id != DatasetSpec("fn_g", 10, test_size=1000).dataset_id
    assert spec.store_path(tmp_path).name.endswith("-dup")
    dataset = build_dataset(spec, tmp_path)
    meta = dataset.meta["duplicates"]
    assert meta["used_for_labels"] == [1] and meta["test_rows_seen_in_train_or_val"] > 0
    assert "not held out" in meta["note"]
    train = dataset.split("train")
    assert len(train) == 100 and sum(train.labels) == 50 and dataset.meta["distinct_inputs"]["train"] < 100
    assert all(palindrome(x) == y for x, y in zip(train.inputs, train.labels, strict=True))
    # where the space is large enough the flag changes nothing but the id: distinct, leak-free splits
    big = build_dataset(DatasetSpec("fn_a", 20, test_size=1000, duplicates=True), tmp_path)
    assert big.meta["duplicates"]["used_for_labels"] == [] and big.meta["distinct_inputs"]["train"] == 100
    assert big.meta["duplicates"]["test_rows_seen_in_train_or_val"] == 0


def test_sweeps_and_grids_at_n10_with_duplicates():
    from llm_erm.config import GridConfig
    from llm_erm.methods.data import sweep_specs

    specs = sweep_specs("fn_c", 10, (200, 1000), test_size=1000, duplicates=True)
    assert [s.train_size for s in specs] == [100, 500] and all(s.duplicates for s in specs)
    with pytest.raises(UsageError):
        sweep_specs("fn_c", 10, (200,), test_size=1000)
    plain = GridConfig.from_options(functions=["fn_g"], lengths=[10])
    dup = GridConfig.from_options(functions=["fn_g"], lengths=[10], duplicates=True)
    assert "duplicates" not in plain.identity() and plain.resolved_run_id() != dup.resolved_run_id()
    assert [s.duplicates for s in dup.dataset_specs()] == [True]


def test_fn_aa_upstream_family_is_a_variant_where_upstream_terminates():
    with pytest.raises(UsageError, match="L=36"):
        DatasetSpec("fn_aa", 30, variant="upstream").validate()
    spec = DatasetSpec("fn_aa", 100, 100, 100, 2000, variant="upstream")
    assert spec.dataset_id != DatasetSpec("fn_aa", 100, 100, 100, 2000).dataset_id
    inputs, labels = _rows(spec)
    assert shortcut_accuracy(inputs, labels, SHORTCUTS["distinct_vertices"][1]) == 1.0  # upstream's separation

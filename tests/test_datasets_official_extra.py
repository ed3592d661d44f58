"""The rest of the official synthetic list (two_primes, prime_minus_5, gcd_range, poly_f2_deg3): ground
truth, generators that are fast, balanced, leak-free and honest about their negatives, and refusals."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest
from sympy import isprime

from llm_erm.datasets import (
    OFFICIAL_EXTRA_TARGETS,
    REGISTERED_TARGETS,
    DatasetSpec,
    build_dataset,
    get_target,
)
from llm_erm.datasets.generators import batch_label, class_capacity, strings_to_symbols
from llm_erm.datasets.targets import poly_monomials
from llm_erm.errors import UsageError

SPLITS = ("train", "val", "test")
CELLS = [(t, length) for t in OFFICIAL_EXTRA_TARGETS for length in get_target(t).default_lengths]


@pytest.mark.parametrize(
    ("target", "x", "label"),
    [
        ("two_primes", "1317", 1), ("two_primes", "1315", 0), ("two_primes", "1521", 1), ("two_primes", "0113", 0),
        ("two_primes", "9797", 1), ("two_primes", "0404", 1), ("two_primes", "0407", 0),
        ("prime_minus_5", "12", 1), ("prime_minus_5", "11", 0), ("prime_minus_5", "06", 0), ("prime_minus_5", "07", 1),
        ("gcd_range", "2040", 1), ("gcd_range", "5151", 1), ("gcd_range", "5252", 0), ("gcd_range", "1938", 0),
        ("gcd_range", "0020", 0), ("gcd_range", "4284", 1),
    ],
)
def test_label_examples(target: str, x: str, label: int) -> None:
    assert get_target(target).label(x) == label


def test_they_are_registered_by_name_beside_the_paper_targets() -> None:
    assert OFFICIAL_EXTRA_TARGETS == ("two_primes", "prime_minus_5", "gcd_range", "poly_f2_deg3")
    assert set(OFFICIAL_EXTRA_TARGETS) <= set(REGISTERED_TARGETS)
    assert get_target("gcd_range").alphabet == "decimal" and get_target("poly_f2_deg3").alphabet == "binary"


def test_poly_is_a_fixed_degree_3_polynomial_independent_of_the_hash_seed() -> None:
    terms = poly_monomials(50)
    assert len(terms) == 3 and all(1 <= len(t) <= 3 for t in terms) and len(set(terms)) == 3
    relevant = {i for t in terms for i in t}
    assert relevant <= set(range(50))
    code = "from llm_erm.datasets.targets import poly_monomials; print(poly_monomials(50))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=None).stdout
            for seed in ("1", "2")}
    assert outs == {f"{terms}\n"}, "the polynomial must not depend on Python's salted hash()"
    x = "".join("1" if i in terms[0] else "0" for i in range(50))
    expected = sum(all(x[i] == "1" for i in t) for t in terms) % 2
    assert get_target("poly_f2_deg3").label(x) == expected
    assert get_target("poly_f2_deg3").params_for(50)["monomials"] == [list(t) for t in terms]


def test_vectorised_poly_label_agrees_with_the_ground_truth() -> None:
    import random

    rnd = random.Random(1)
    target = get_target("poly_f2_deg3")
    for length in (5, 20, 33, 100):
        xs = ["".join(rnd.choice("01") for _ in range(length)) for _ in range(300)] + ["1" * length]
        fast = batch_label(target, length)(strings_to_symbols(xs, length))
        assert fast.tolist() == [target.label(x) for x in xs]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    started = time.process_time()  # CPU time: load on the machine does not count
    built = {(t, L): build_dataset(DatasetSpec(t, L, test_size=2000), root) for t, L in CELLS}
    assert time.process_time() - started < 120, "generators must be fast"
    return built


@pytest.mark.parametrize(("target", "length"), CELLS)
def test_every_default_length_is_balanced_leak_free_and_true(grid, target: str, length: int) -> None:
    dataset = grid[(target, length)]
    truth = get_target(target).label
    seen = {}
    for split, size in zip(SPLITS, (100, 100, 2000), strict=True):
        s = dataset.split(split)
        assert len(s.inputs) == size and sum(s.labels) == size // 2
        assert s.labels == [truth(x) for x in s.inputs]
        assert len(set(s.inputs)) == size
        seen[split] = set(s.inputs)
        assert all(len(x) == length for x in s.inputs)
    assert not seen["train"] & seen["val"] and not (seen["train"] | seen["val"]) & seen["test"]


def _pairs(dataset, label: int):
    s = dataset.split("test")
    half = len(s.inputs[0]) // 2
    return [(int(x[:half]), int(x[half:]), x) for x, y in zip(s.inputs, s.labels, strict=True) if y == label]


def test_two_primes_positives_mix_both_primes_and_both_composites(grid) -> None:
    dataset = grid[("two_primes", 30)]
    positives = _pairs(dataset, 1)
    both_prime = sum(isprime(a) and isprime(b) for a, b, _ in positives)
    assert 0.35 < both_prime / len(positives) < 0.65
    negatives = _pairs(dataset, 0)
    assert all(isprime(a) != isprime(b) for a, b, _ in negatives)
    assert all(x[0] != "0" and x[15] != "0" for _, _, x in positives + negatives), "each half has L/2 digits"


def test_gcd_negatives_include_near_misses(grid) -> None:
    dataset = grid[("gcd_range", 20)]
    assert all(20 <= math.gcd(a, b) <= 51 for a, b, _ in _pairs(dataset, 1))
    near = [math.gcd(a, b) for a, b, _ in _pairs(dataset, 0)]
    share = sum(10 <= g < 20 or 51 < g <= 70 for g in near) / len(near)
    assert share > 0.3, "about half the negatives have a gcd just outside 20..51"


def test_prime_minus_5_negatives_share_the_positives_last_digits(grid) -> None:
    dataset = grid[("prime_minus_5", 25)]
    s = dataset.split("test")
    last = {y: {x[-1] for x, label in zip(s.inputs, s.labels, strict=True) if label == y} for y in (0, 1)}
    assert last[0] == last[1] == set("2468"), "the last digit must not give the label away"


@pytest.mark.parametrize(("target", "length", "message"), [
    ("two_primes", 25, "two_primes reads two numbers of L/2 digits each: it needs an even length >= 4, got 25"),
    ("gcd_range", 2, "gcd_range reads two numbers of L/2 digits each: it needs an even length >= 4, got 2"),
    ("poly_f2_deg3", 4, "poly_f2_deg3 needs a length >= 5"),
])
def test_unsupported_lengths_are_refused(target: str, length: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DatasetSpec(target, length).validate()


def test_tiny_spaces_are_counted_exactly_and_refused_before_work() -> None:
    assert class_capacity(get_target("two_primes"), 4) == (2 * 21 * 69, 21**2 + 69**2)  # 21 two-digit primes
    negatives, positives = class_capacity(get_target("gcd_range"), 4)
    assert positives == sum(20 <= math.gcd(a, b) <= 51 for a in range(10, 100) for b in range(10, 100))
    with pytest.raises(UsageError, match="only 168 distinct inputs with label 1"):
        DatasetSpec("gcd_range", 4, train_size=200, val_size=200).validate()


def test_a_rebuild_is_byte_identical(tmp_path) -> None:
    for target, length in (("two_primes", 20), ("gcd_range", 30), ("prime_minus_5", 20), ("poly_f2_deg3", 30)):
        a = build_dataset(DatasetSpec(target, length, test_size=200), tmp_path / "a")
        b = build_dataset(DatasetSpec(target, length, test_size=200), tmp_path / "b")
        assert {p.name: p.read_bytes() for p in a.path.iterdir()} == {p.name: p.read_bytes() for p in b.path.iterdir()}

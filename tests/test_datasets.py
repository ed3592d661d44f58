"""Targets, generators and splits: the must-hold properties of issue 2, for every target x default length."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from llm_erm.datasets import ALL_TARGETS, SEED_TARGETS, DatasetSpec, build_dataset, get_target
from llm_erm.datasets.generators import batch_label, class_capacity, dyck2_count, strings_to_symbols
from llm_erm.datasets.targets import cycle_rank, graph_max_length, parity_rand_positions, parse_edges
from llm_erm.errors import UsageError

SPLITS = ("train", "val", "test")
CELLS = [(t, length) for t in ALL_TARGETS for length in get_target(t).default_lengths]


def bits(*ones: int, length: int = 20) -> str:
    return "".join("1" if i in ones else "0" for i in range(length))


# ---------------------------------------------------------------- the ground truth


@pytest.mark.parametrize(
    ("target", "x", "label"),
    [
        ("fn_a", "1011", 1), ("fn_a", "1001", 0),
        ("fn_b", "1000", 1), ("fn_b", "0011", 0), ("fn_b", "11100", 0), ("fn_b", "00100", 0),
        ("fn_c", "0010101010", 1), ("fn_c", "1010101", 0),
        ("fn_d", "100111111", 1), ("fn_d", "0011111011", 0),
        ("fn_e", bits(2), 1), ("fn_e", bits(2, 14), 0), ("fn_e", bits(15), 0),
        ("fn_f", bits(15), 1), ("fn_f", bits(2, 14, 18, 15, 1, 10, 0, 4, 6, 11), 0), ("fn_f", bits(3), 0),
        ("fn_g", "0110", 1), ("fn_g", "10101", 1), ("fn_g", "0100", 0), ("fn_g", "10110", 0),
        ("fn_h", "0001", 1), ("fn_h", "00101101", 1), ("fn_h", "00100111", 0), ("fn_h", "0100", 0),
        ("fn_h", "0011", 0), ("fn_h", "0000", 0),
        ("fn_i", "97", 1), ("fn_i", "91", 0), ("fn_k", "7919", 1), ("fn_k", "7917", 0),
        ("fn_j", "1", 1), ("fn_j", "11", 1), ("fn_j", "101", 0), ("fn_j", "000", 0), ("fn_j", "100", 0),
        ("fn_v", "50", 1), ("fn_v", "49", 1), ("fn_v", "48", 0), ("fn_v", "10", 0), ("fn_v", "59", 0),
        ("fn_aa", "u01v02u02v03u03v01u04v04", 1),  # triangle + self-loop: rank 2 > 1
        ("fn_aa", "u01v02u02v03u03v01u04v05", 0),  # rank 1
        ("fn_aa", "u01v02u01v02u01v02u05v06", 1),  # a triple edge: rank 2
    ],
)
def test_label_examples(target: str, x: str, label: int) -> None:
    assert get_target(target).label(x) == label


def test_sha256_parity_matches_an_independent_popcount() -> None:
    label = get_target("fn_l").label
    for x in ("0", "1", "0101", "1" * 100):
        assert label(x) == bin(int(hashlib.sha256(x.encode()).hexdigest(), 16)).count("1") % 2


def test_rule30_parity_against_a_direct_simulation() -> None:
    rule = {"111": 0, "110": 0, "101": 0, "100": 1, "011": 1, "010": 1, "001": 1, "000": 0}
    rnd = random.Random(3)
    for _ in range(50):
        x = "".join(rnd.choice("01") for _ in range(rnd.randint(1, 30)))
        padded = f"0{x}0"
        assert get_target("fn_j").label(x) == sum(rule[padded[i : i + 3]] for i in range(len(x))) % 2


def test_parity_rand_positions_table_and_rule() -> None:
    assert parity_rand_positions(100) == (42, 96, 62, 98, 46, 95, 60, 24, 78, 16)
    assert get_target("fn_e").params_for(20)["positions"] == [2, 14, 18]
    derived = parity_rand_positions(33)
    assert derived == parity_rand_positions(33) and len(set(derived)) == 10
    assert all(0 <= p < 33 for p in derived)
    assert get_target("fn_f").params_for(33)["positions"] == list(derived)
    assert "torch.randperm" in get_target("fn_f").params_for(33)["positions_rule"]
    # upstream's positions at a length outside the SPEC table (torch.manual_seed(42); torch.randperm(10))
    assert parity_rand_positions(10) == (2, 6, 1, 8, 4, 5, 0, 9, 3, 7)
    assert get_target("fn_e").params_for(10)["positions"] == [2, 6, 1]
    above = parity_rand_positions(333)
    assert len(set(above)) == 10 and "SHA-256" in get_target("fn_f").params_for(333)["positions_rule"]


def test_vectorised_labels_agree_with_the_ground_truth() -> None:
    rnd = random.Random(7)
    for target_id in ("fn_a", "fn_b", "fn_c", "fn_d", "fn_e", "fn_f", "fn_g", "fn_j"):
        target = get_target(target_id)
        for length in (20, 25, 33):
            xs = ["".join(rnd.choice("01") for _ in range(length)) for _ in range(300)]
            xs += ["10101010" + "0" * (length - 8), "0" * (length - 8) + "00111111", "1" * length]
            fast = batch_label(target, length)(strings_to_symbols(xs, length))
            assert fast.tolist() == [target.label(x) for x in xs], target_id


def test_cycle_rank_counts_self_loops_and_repeated_edges() -> None:
    assert cycle_rank([(1, 2), (2, 3)]) == 0
    assert cycle_rank([(1, 2), (2, 3), (3, 1)]) == 1
    assert cycle_rank([(5, 5)]) == 1
    assert cycle_rank([(1, 2), (1, 2), (3, 4), (4, 3)]) == 2
    with pytest.raises(ValueError):
        parse_edges("u1v2")


def test_exact_class_capacities() -> None:
    assert dyck2_count(20) == 1344 and dyck2_count(4) == 2
    assert class_capacity(get_target("fn_g"), 20) == (1024 * 10, 1024)  # near misses at L=20 (the paper's)
    assert class_capacity(get_target("fn_g"), 22) == (2**22 - 2048, 2048)
    assert class_capacity(get_target("fn_c"), 8) == (255, 1)
    assert class_capacity(get_target("fn_a"), 10) == (512, 512)
    neg, pos = class_capacity(get_target("fn_i"), 2)
    assert pos == 21  # two-digit primes
    assert neg == len({a * b for a in range(2, 10) for b in range(2, 10) if a * b >= 10})


# ---------------------------------------------------------------- every target x default length


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Every target at every default length; a smaller test split keeps the suite fast."""
    root = tmp_path_factory.mktemp("datasets")
    return {(t, L): build_dataset(DatasetSpec(t, L, test_size=1000), root) for t, L in CELLS}


@pytest.mark.parametrize(("target", "length"), CELLS)
def test_every_target_and_default_length(grid, target: str, length: int) -> None:
    dataset = grid[(target, length)]
    truth = get_target(target).label
    inputs = {}
    for split, size in zip(SPLITS, (100, 100, 1000), strict=True):
        s = dataset.split(split)
        assert len(s.inputs) == size
        assert sum(s.labels) == size // 2, f"{split} is not exactly balanced"
        assert s.labels == [truth(x) for x in s.inputs], "a stored label differs from the target"
        assert len(set(s.inputs)) == dataset.meta["distinct_inputs"][split]
        assert s.inputs != sorted(s.inputs) and s.labels != sorted(s.labels), "splits must be shuffled"
        inputs[split] = set(s.inputs)
    assert not inputs["train"] & inputs["val"]
    assert not inputs["train"] & inputs["test"]
    assert not inputs["val"] & inputs["test"]
    assert len(inputs["train"]) == 100 and len(inputs["val"]) == 100
    if get_target(target).alphabet == "binary":
        assert all(len(x) == length and set(x) <= {"0", "1"} for x in inputs["train"])
    if get_target(target).alphabet == "decimal":
        assert all(len(x) == length and x[0] != "0" for x in inputs["test"])


def test_prime_negatives_have_the_documented_form(grid) -> None:
    for length in (20, 25):
        composites = [x for x, y in zip(*_xy(grid[("fn_k", length)]), strict=True) if y == 0]
        assert {x[-1] for x in composites} <= set("1379")
        plain = [x for x, y in zip(*_xy(grid[("fn_i", length)]), strict=True) if y == 0]
        assert {x[-1] for x in plain} & set("02468"), "fn_i negatives are any products, even ones included"


def _xy(dataset):
    s = dataset.split("test")
    return s.inputs, s.labels


def test_graph_inputs_are_edge_tokens(grid) -> None:
    for length in get_target("fn_aa").default_lengths:
        for x in grid[("fn_aa", length)].split("train").inputs:
            edges = parse_edges(x)
            assert len(edges) == length // 6 and len(x) == 6 * (length // 6)
            assert all(1 <= v <= 99 for edge in edges for v in edge)


# ---------------------------------------------------------------- tiny spaces, odd lengths, graph lengths


@pytest.mark.parametrize(("target", "positives"), [("fn_g", 1024), ("fn_h", 1344)])
def test_tiny_input_spaces_stay_leak_free(tmp_path, target: str, positives: int) -> None:
    dataset = build_dataset(DatasetSpec(target, 20), tmp_path)
    train, val, test = (dataset.split(s) for s in SPLITS)
    held = set(train.inputs) | set(val.inputs)
    assert len(held) == 200
    assert not held & set(test.inputs)
    assert sum(test.labels) == 5000
    test_positives = {x for x, y in zip(test.inputs, test.labels, strict=True) if y == 1}
    # Only test repeats: it holds every positive that train/val left over, and no more.
    assert len(test_positives) == positives - 100
    assert dataset.meta["distinct_inputs"]["test"] == len(set(test.inputs)) < 10000
    assert test.labels == [get_target(target).label(x) for x in test.inputs]


@pytest.mark.parametrize("length", [21, 25, 31])
def test_no_palindrome_is_labelled_zero_at_odd_lengths(tmp_path, length: int) -> None:
    # The mixed variant: half its negatives are near misses, where an odd length could go wrong.
    dataset = build_dataset(DatasetSpec("fn_g", length, test_size=2000, variant="mixed"), tmp_path)
    for split in SPLITS:
        s = dataset.split(split)
        negatives = [x for x, y in zip(s.inputs, s.labels, strict=True) if y == 0]
        assert negatives and all(x != x[::-1] for x in negatives)
        near_misses = sum(sum(a != b for a, b in zip(x, x[::-1], strict=True)) == 2 for x in negatives)
        assert near_misses > len(negatives) // 4, "about half the negatives are one-bit near misses"


@pytest.mark.parametrize("length", [24, 25, 29, 30, 31, 36, 707])
def test_graph_target_terminates_at_every_supported_length(tmp_path, length: int) -> None:
    dataset = build_dataset(DatasetSpec("fn_aa", length, train_size=20, val_size=20, test_size=40), tmp_path)
    assert sum(dataset.split("test").labels) == 20


@pytest.mark.parametrize("length", [6, 20, 23, graph_max_length() + 1])
def test_graph_target_refuses_unsupported_lengths(length: int) -> None:
    with pytest.raises(UsageError, match="fn_aa"):
        DatasetSpec("fn_aa", length).validate()


def test_seed_targets_are_the_twelve_paper_targets() -> None:
    assert tuple(f"fn_{c}" for c in "abcdefghijkl") == SEED_TARGETS
    assert ALL_TARGETS == SEED_TARGETS + ("fn_v", "fn_aa")
    assert get_target("parity_all").id == "fn_a"
    assert get_target("fn_h").default_lengths == (100, 80, 60, 40, 20)
    assert min(get_target("fn_aa").default_lengths) >= 24


def test_dyck_generators_match_the_ground_truth_directly() -> None:
    from llm_erm.datasets.generators import class_sampler

    rng = np.random.default_rng(0)
    target = get_target("fn_h")
    for label in (0, 1):
        xs = class_sampler(target, 40, label)(rng, 500)
        assert len(xs) > 400 and all(target.label(x) == label for x in xs)

"""Shortcut features and class-conditional statistics of a labelled sample.

A *shortcut* is a cheap feature of the input (its last digit, its count of ones mod 2, ...). Its
accuracy on a sample is the best any rule reading only that feature can reach there: per feature value
predict the majority label (the plug-in Bayes accuracy). On a balanced sample 0.5 is chance; a high value
says the data can be solved without learning the target. benchmarks/bench_shortcuts.py tabulates them per
target and variant (datasets/README.md's table); tests/test_datasets_upstream.py compares class-conditional
statistics of our default data with values measured from the upstream generators.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence

from llm_erm.datasets.targets import parse_edges

Feature = Callable[[str], Hashable]


def _ones(x: str) -> int:
    return x.count("1")


def _digit_value_mod(m: int) -> Feature:
    # The number modulo m (decimal strings): mod 3 is the digit sum mod 3.
    return lambda x: int(x) % m


def _mismatched_pairs(x: str) -> int:
    """Positions i < L/2 with x[i] != x[L-1-i]: 0 for a palindrome, 1 for a one-flip near miss."""
    n = len(x)
    return sum(x[i] != x[n - 1 - i] for i in range(n // 2))


def _distinct_vertices(x: str) -> int:
    return len({v for edge in parse_edges(x) for v in edge})


# name -> (alphabets it applies to, feature)
SHORTCUTS: dict[str, tuple[tuple[str, ...], Feature]] = {
    "last_digit": (("binary", "decimal"), lambda x: x[-1]),
    "first_digit": (("binary", "decimal"), lambda x: x[0]),
    "ones": (("binary",), _ones),
    "ones_mod_2": (("binary",), lambda x: _ones(x) % 2),
    "ones_mod_3": (("binary",), lambda x: _ones(x) % 3),
    "value_mod_3": (("decimal",), _digit_value_mod(3)),
    "value_mod_7": (("decimal",), _digit_value_mod(7)),
    "distinct_vertices": (("edges",), _distinct_vertices),
}


def shortcut_accuracy(inputs: Sequence[str], labels: Sequence[int], feature: Feature) -> float:
    """Accuracy of the best rule that reads only `feature` (majority label per value) on this sample."""
    counts: Counter[tuple[Hashable, int]] = Counter((feature(x), int(y)) for x, y in zip(inputs, labels, strict=True))
    values = {v for v, _ in counts}
    return sum(max(counts[(v, 0)], counts[(v, 1)]) for v in values) / max(1, len(inputs))


def shortcut_table(alphabet: str, inputs: Sequence[str], labels: Sequence[int]) -> dict[str, float]:
    """Every applicable shortcut's accuracy on the sample, rounded to 3 places."""
    return {name: round(shortcut_accuracy(inputs, labels, f), 3)
            for name, (alphabets, f) in SHORTCUTS.items() if alphabet in alphabets}


def class_stats(alphabet: str, inputs: Sequence[str], labels: Sequence[int]) -> dict[str, dict[str, float]]:
    """Per class ("0", "1"): the mean of a few features and, for decimal strings, the share of each last digit.

    These are what tests compare with the upstream generators: they pin the class-conditional distribution
    where our generators once differed (fn_g's negatives, fn_v's last digits)."""
    out: dict[str, dict[str, float]] = {}
    for label in (0, 1):
        xs = [x for x, y in zip(inputs, labels, strict=True) if int(y) == label]
        stats: dict[str, float] = {}
        if alphabet == "binary":
            stats["ones_fraction"] = sum(map(_ones, xs)) / max(1, sum(map(len, xs)))
            stats["mismatched_pairs"] = sum(map(_mismatched_pairs, xs)) / max(1, len(xs))
            stats["one_mismatch_share"] = sum(_mismatched_pairs(x) == 1 for x in xs) / max(1, len(xs))
        elif alphabet == "decimal":
            last = Counter(x[-1] for x in xs)
            for digit in "0123456789":
                stats[f"last_{digit}"] = last[digit] / max(1, len(xs))
            stats["last_odd"] = sum(int(x[-1]) % 2 for x in xs) / max(1, len(xs))
            stats["value_mod_3_zero"] = sum(int(x) % 3 == 0 for x in xs) / max(1, len(xs))
        elif alphabet == "edges":
            stats["distinct_vertices"] = sum(map(_distinct_vertices, xs)) / max(1, len(xs))
        out[str(label)] = {k: round(v, 4) for k, v in stats.items()}
    return out

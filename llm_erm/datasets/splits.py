"""Leak-free, exactly balanced, stratified train/val/test splits from the class samplers.

Per class: draw candidates until train/2 + val/2 + test/2 distinct inputs are found, or until the
sampler stops producing new ones (a tiny input space, e.g. palindromes at L=20). Train and val
always take distinct inputs; test takes the remaining distinct ones and, only when the space ran
out, fills up with repeats drawn from the same sampler, never an input of train or val. Each
split is then the two classes shuffled together.

With `duplicates=True` (asked for explicitly: the paper's n=10 sets) a class whose space is too small for
distinct train + val draws every split with repeats, as upstream's allow_duplicates generators do: inputs
repeat within and across splits, so test is not held out; `GeneratedSplits.duplicated` says which classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llm_erm.datasets.generators import Draw
from llm_erm.errors import UsageError

SPLITS = ("train", "val", "test")
FRUITLESS_CALLS = 3  # consecutive sampler calls without a new input: the space is exhausted
MIN_BATCH = 64
MAX_FILL_CALLS = 10_000  # bound on refill calls for a test split of repeats (never reached in practice)


@dataclass(frozen=True)
class GeneratedSplits:
    rows: dict[str, list[tuple[str, int]]]  # split -> (input, label), in stored order
    distinct: dict[str, int]  # split -> number of distinct inputs
    duplicated: tuple[int, ...] = ()  # labels whose splits were drawn with repeats (duplicates=True only)


def _distinct_inputs(draw: Draw, rng: np.random.Generator, wanted: int) -> list[str]:
    found: dict[str, None] = {}  # insertion-ordered set: the order of discovery is random
    fruitless = 0
    while len(found) < wanted and fruitless < FRUITLESS_CALLS:
        before = len(found)
        missing = wanted - len(found)
        for x in draw(rng, max(MIN_BATCH, missing + missing // 50 + 8)):
            found.setdefault(x)
            if len(found) == wanted:
                break
        fruitless = fruitless + 1 if len(found) == before else 0
    return list(found)


def _with_repeats(draw: Draw, rng: np.random.Generator, n: int, describe: str, label: int) -> list[str]:
    out: list[str] = []
    for _ in range(MAX_FILL_CALLS):
        if len(out) >= n:
            return out[:n]
        out.extend(draw(rng, max(MIN_BATCH, n - len(out))))
    raise RuntimeError(f"{describe}: could not draw {n} inputs with label {label}")


def _class_rows(
    draw: Draw, rng: np.random.Generator, sizes: dict[str, int], label: int, describe: str,
    duplicates: bool = False,
) -> dict[str, list[str]] | None:
    """Per split, this class's inputs; None when `duplicates` and the space is too small (draw with repeats)."""
    n_train, n_val, n_test = (sizes[s] for s in SPLITS)
    pool = _distinct_inputs(draw, rng, n_train + n_val + n_test)
    if len(pool) <= n_train + n_val and duplicates:
        return None
    if len(pool) <= n_train + n_val:
        raise UsageError(
            f"{describe} has only {len(pool)} distinct inputs with label {label}; train+val need "
            f"{n_train + n_val} distinct ones plus at least one for test: use a longer length or "
            "smaller --train-size/--val-size"
        )
    train, val, test = pool[:n_train], pool[n_train : n_train + n_val], pool[n_train + n_val :]
    held = set(train) | set(val)
    for _ in range(MAX_FILL_CALLS):
        if len(test) >= n_test:
            break
        test.extend(x for x in draw(rng, max(MIN_BATCH, n_test - len(test))) if x not in held)
    else:
        raise RuntimeError(f"{describe}: could not fill the test split with label {label}")
    return {"train": train, "val": val, "test": test[:n_test]}


def generate_splits(
    positives: Draw, negatives: Draw, sizes: dict[str, int], seed: int, describe: str, duplicates: bool = False,
) -> GeneratedSplits:
    """Balanced splits of `sizes` (each even) from the two class samplers, reproducible from `seed`."""
    pos_rng, neg_rng, shuffle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    half = {s: sizes[s] // 2 for s in SPLITS}
    classes: dict[int, dict[str, list[str]]] = {}
    duplicated = []
    for label, draw, rng in ((1, positives, pos_rng), (0, negatives, neg_rng)):
        rows_of = _class_rows(draw, rng, half, label, describe, duplicates)
        if rows_of is None:  # too small a space, and repeats were asked for: every split drawn with repeats
            rows_of = {s: _with_repeats(draw, rng, half[s], describe, label) for s in SPLITS}
            duplicated.append(label)
        classes[label] = rows_of
    pos, neg = classes[1], classes[0]
    rows: dict[str, list[tuple[str, int]]] = {}
    for split in SPLITS:
        both = [(x, 1) for x in pos[split]] + [(x, 0) for x in neg[split]]
        rows[split] = [both[i] for i in shuffle_rng.permutation(len(both))]
    distinct = {split: len({x for x, _ in rows[split]}) for split in SPLITS}
    return GeneratedSplits(rows, distinct, tuple(sorted(duplicated)))

"""A small typed DSL over strings, bits and integers, and its length-first bottom-up enumerator.

Programs are expressions in one variable `x`, the input string. Their size is the number of DSL
nodes; a literal (a position, a substring, a modulus) belongs to the node that uses it, so
`x.count('1') % 2` has size 3 (x, count, % 2) and `int(x[2]) ^ int(x[14])` size 3.

The enumerator builds programs smallest first and keeps one program per distinct behaviour on the
training inputs (observational equivalence): programs that agree on every training input cannot
be told apart by the data, so only the first, smallest of them is extended. Every program's value
is a numpy row over the training inputs, so whole families are evaluated in one array operation.

The DSL is generic on purpose: nothing in it names a benchmark target. Substring constants are
mined from the training inputs, comparison thresholds are the values a program takes there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np

# The enumerate proposer's behaviour version (part of its identity): bump when this DSL or the tabular
# rules (tabular_rules.py) change what they return. Adding the tabular rules did not need a bump:
# those prompts used to fail, and a failed call is never recorded as an answer.
DSL_VERSION = "1"

# Value types. BIT values are 0/1 (bools or ints), stored as packed bits (np.packbits rows: eight
# inputs a byte, so AND/OR/XOR run on bytes); BIG are integers that may exceed int64 (the value of
# a 100-digit string); INT are small non-negative integers (counts, residues).
STR, INT, BIG, BIT = "str", "int", "big", "bit"

MAX_SIZE = 64  # far beyond any budget; only guarantees the loop ends when the banks stop growing
SUBSTRING_CONSTANTS = 16  # how many mined substrings `'c' in s` may test
MAX_SUBSTRING = 8
MODULI = tuple(range(3, 11))  # `n % 2` is its own BIT-valued node
CHUNK_ELEMENTS = 1 << 22  # bound on one evaluated block (rows x training inputs)

# Stdlib-only primality, emitted into programs that use it: candidates run in a sandbox where
# only the standard library is sure to exist. Miller-Rabin with the first twelve prime bases is
# exact below 3.3e24 and a strong probable-prime test above.
ISPRIME_SOURCE = '''\
def isprime(n):
    if n < 2:
        return False
    bases = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    for p in bases:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in bases:
        y = pow(a, d, n)
        if y == 1 or y == n - 1:
            continue
        for _ in range(s - 1):
            y = y * y % n
            if y == n - 1:
                break
        else:
            return False
    return True


'''


@dataclass(frozen=True)
class Program:
    expression: str  # a Python expression in `x`
    size: int  # DSL nodes
    train_acc: float

    @property
    def source(self) -> str:
        """The program as a stdlib-only Python module defining `f(x)`."""
        helper = ISPRIME_SOURCE if "isprime(" in self.expression else ""
        return f"{helper}def f(x):\n    return {self.expression}\n"


@dataclass(frozen=True)
class Enumeration:
    best: tuple[Program, ...]  # by training accuracy, then size, then enumeration order
    programs_enumerated: int  # programs built and evaluated, equivalent ones included
    distinct_programs: int  # programs kept: one per behaviour on the training inputs
    seconds: float
    solved: bool  # a program fits every training example (it is best[0])
    budget_exhausted: bool  # stopped by max_programs or max_seconds before a fit was found


@dataclass(frozen=True)
class _Unary:
    name: str
    arg: str
    out: str
    params: Callable[[_Search, np.ndarray], Sequence[Any]]  # literals to try on a block of programs
    apply: Callable[[np.ndarray, Any], np.ndarray]  # block (programs x inputs) -> block
    render: Callable[[str, Any], str]
    # Which programs of the block take the literal (default: all). Comparisons take only the
    # thresholds that split a program's own values; prefixes are cut from the input only.
    takes: Callable[[np.ndarray, Any], np.ndarray] | None = None
    input_only: bool = False


@dataclass(frozen=True)
class _Binary:
    name: str
    args: tuple[str, str]
    out: str
    apply: Callable[[np.ndarray, np.ndarray], np.ndarray]  # two aligned blocks -> block
    render: str  # format with {a} and {b}
    commutative: bool


def _each(fn: Callable[..., Any], dtype: Any = object) -> Callable[[np.ndarray], np.ndarray]:
    """Lift a per-value function to a block of values."""
    ufunc = np.frompyfunc(fn, 1, 1)
    return lambda block: ufunc(block).astype(dtype)


def _no_literal(search: _Search, block: np.ndarray) -> Sequence[Any]:
    return (None,)


def _thresholds(search: _Search, block: np.ndarray) -> Sequence[Any]:
    return np.unique(block).tolist()


def _splits_equal(block: np.ndarray, v: int) -> np.ndarray:
    hits = block == v
    return hits.any(axis=1) & ~hits.all(axis=1)


def _splits_less(block: np.ndarray, v: int) -> np.ndarray:
    return (block.min(axis=1) < v) & (block.max(axis=1) >= v)


def _is_prime(n: int) -> bool:
    return bool(gmpy2.is_prime(n)) if n >= 2 else False


_is_prime_block = _each(_is_prime, bool)


def _int_value(search: _Search, block: np.ndarray) -> Sequence[Any]:
    return (2 if search.binary else 10,)


def _to_int(block: np.ndarray, base: int) -> np.ndarray:
    return np.frompyfunc(lambda s: int(s, base), 1, 1)(block)


UNARY: tuple[_Unary, ...] = (
    _Unary("reverse", STR, STR, _no_literal, lambda b, _: _each(lambda s: s[::-1])(b), "{}[::-1]".format),
    _Unary("first_half", STR, STR, _no_literal, lambda b, _: _each(lambda s: s[: len(s) // 2])(b),
           lambda a, _: f"{a}[:len({a}) // 2]"),
    _Unary("second_half", STR, STR, _no_literal, lambda b, _: _each(lambda s: s[len(s) // 2:])(b),
           lambda a, _: f"{a}[len({a}) // 2:]"),
    _Unary("prefix", STR, STR, lambda s, b: range(1, s.max_len), lambda b, k: _each(lambda v: v[:k])(b),
           lambda a, k: f"{a}[:{k}]", input_only=True),
    _Unary("count", STR, INT, lambda s, b: s.chars, lambda b, c: _each(lambda v: v.count(c), np.int64)(b),
           lambda a, c: f"{a}.count({c!r})"),
    _Unary("contains", STR, BIT, lambda s, b: s.substrings, lambda b, c: _each(lambda v: c in v, bool)(b),
           lambda a, c: f"({c!r} in {a})"),
    _Unary("value", STR, BIG, _int_value, _to_int,
           lambda a, base: f"int({a}, 2)" if base == 2 else f"int({a})"),
    _Unary("odd", BIG, BIT, _no_literal, lambda b, _: (b % 2).astype(bool), "({} % 2)".format),
    _Unary("mod", BIG, INT, lambda s, b: MODULI, lambda b, k: (b % k).astype(np.int64), "({} % {})".format),
    _Unary("isprime", BIG, BIT, _no_literal, lambda b, _: _is_prime_block(b), "isprime({})".format),
    _Unary("odd", INT, BIT, _no_literal, lambda b, _: (b % 2).astype(bool), "({} % 2)".format),
    _Unary("mod", INT, INT, lambda s, b: MODULI, lambda b, k: b % k, "({} % {})".format),
    _Unary("isprime", INT, BIT, _no_literal, lambda b, _: _is_prime_block(b), "isprime({})".format),
    _Unary("equals", INT, BIT, _thresholds, lambda b, v: b == v, "({} == {})".format, _splits_equal),
    _Unary("less", INT, BIT, _thresholds, lambda b, v: b < v, "({} < {})".format, _splits_less),
    # The literal is the mask of the bits that stand for inputs: negation leaves the padding at 0.
    _Unary("not", BIT, BIT, lambda s, b: (s.padding_mask,), lambda b, mask: ~b & mask, lambda a, _: f"(not {a})"),
)

BINARY: tuple[_Binary, ...] = (
    _Binary("and", (BIT, BIT), BIT, np.bitwise_and, "({a} & {b})", True),
    _Binary("or", (BIT, BIT), BIT, np.bitwise_or, "({a} | {b})", True),
    _Binary("xor", (BIT, BIT), BIT, np.bitwise_xor, "({a} ^ {b})", True),
    _Binary("add", (INT, INT), INT, np.add, "({a} + {b})", True),
    _Binary("equals", (INT, INT), BIT, np.equal, "({a} == {b})", True),
    _Binary("less", (INT, INT), BIT, np.less, "({a} < {b})", False),
    _Binary("equals", (STR, STR), BIT, np.equal, "({a} == {b})", True),
)


_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)


class _Stop(Exception):
    """The search ends: a fit was found or the budget is spent."""


class _Level:
    """The kept programs of one type and one size, in enumeration order."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.exprs: list[str] = []
        self._values: np.ndarray | None = None

    def add(self, values: np.ndarray, exprs: list[str]) -> None:
        self.chunks.append(values)
        self.exprs.extend(exprs)
        self._values = None

    @property
    def values(self) -> np.ndarray:
        if self._values is None:
            self._values = np.concatenate(self.chunks) if self.chunks else np.empty((0, 0))
        return self._values


def mine_substrings(inputs: Sequence[str], labels: Sequence[int], limit: int = SUBSTRING_CONSTANTS) -> list[str]:
    """The substrings (length 1..8) whose presence best separates the classes on the training data.

    Ranked by |share of positives containing it - share of negatives containing it|; among equal
    scores the longer (more specific) one first, then alphabetical, so the choice is deterministic.
    """
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return []
    balance: dict[str, float] = {}
    for text, y in zip(inputs, labels, strict=True):
        present = {text[i: i + n] for n in range(1, MAX_SUBSTRING + 1) for i in range(len(text) - n + 1)}
        weight = 1 / positives if y else -1 / negatives
        for sub in present:
            balance[sub] = balance.get(sub, 0.0) + weight
    ranked = sorted(balance.items(), key=lambda kv: (-round(abs(kv[1]), 12), -len(kv[0]), kv[0]))
    return [sub for sub, score in ranked[:limit] if abs(score) > 1e-12]


class _Search:
    def __init__(self, inputs: Sequence[str], labels: Sequence[int], max_programs: int, max_seconds: float):
        self.inputs = np.array(list(inputs), dtype=object)
        self.labels = np.array([bool(y) for y in labels])
        self.n = len(inputs)
        self.max_programs = max_programs
        self.start = time.perf_counter()
        self.deadline = self.start + max_seconds
        self.min_len = min(len(s) for s in inputs)
        self.max_len = max(len(s) for s in inputs)
        self.chars = sorted(set("".join(inputs)))
        self.binary = set(self.chars) <= {"0", "1"}
        self.digits = all(c.isdigit() for c in self.chars)
        self.substrings = mine_substrings(inputs, labels)
        self.levels: dict[str, dict[int, _Level]] = {t: {} for t in (STR, INT, BIG, BIT)}
        self.seen: dict[str, set[Any]] = {t: set() for t in (STR, INT, BIG, BIT)}
        self.padding_mask = np.packbits(np.ones(self.n, dtype=bool))
        self.packed_labels = np.packbits(self.labels)
        self.target_key = self._keys(BIT, self.packed_labels[None, :])[0]
        self.enumerated = 0
        self.solved = False
        self.budget_exhausted = False

    # -- admitting programs -------------------------------------------------------------------

    def _keys(self, kind: str, block: np.ndarray) -> list[Any]:
        if kind == BIT:
            packed = np.ascontiguousarray(block)
            return packed.view(np.dtype((np.void, packed.shape[1]))).ravel().tolist()
        if kind == INT:
            block = np.ascontiguousarray(block, dtype=np.int64)
            return block.view(np.dtype((np.void, 8 * block.shape[1]))).ravel().tolist()
        return [tuple(row) for row in block]

    def _emit(self, kind: str, size: int, block: np.ndarray, render: Callable[[list[int]], list[str]]) -> None:
        """Keep the rows of `block` (new programs in enumeration order) that show a new behaviour."""
        if kind == BIT and block.dtype != np.uint8:  # a comparison's booleans: pack them
            block = np.packbits(block.astype(bool, copy=False), axis=1)
        room = self.max_programs - self.enumerated
        truncated = len(block) > room
        if truncated:
            block = block[:room]
        seen = self.seen[kind]
        fresh: list[int] = []
        for i, key in enumerate(self._keys(kind, block)):
            if key in seen:
                continue
            seen.add(key)
            fresh.append(i)
            if kind == BIT and key == self.target_key:
                self.solved = True
                block = block[: i + 1]
                break
        self.enumerated += len(block)
        if fresh:
            self.levels[kind].setdefault(size, _Level()).add(block[fresh], render(fresh))
        if self.solved:
            raise _Stop
        if truncated or time.perf_counter() > self.deadline:
            self.budget_exhausted = True
            raise _Stop

    # -- growing one size ---------------------------------------------------------------------

    def _terminals(self) -> None:
        self._emit(STR, 1, self.inputs[None, :], lambda rows: ["x"])
        if not self.digits:
            return
        # One node per position: the digit there (a BIT for binary strings, an INT for decimal).
        kind, dtype = (BIT, bool) if self.binary else (INT, np.int64)
        digits = np.array([[int(s[i]) for s in self.inputs] for i in range(self.min_len)], dtype=dtype)
        self._emit(kind, 1, digits, lambda rows: [f"int(x[{i}])" for i in rows])

    def _unary(self, op: _Unary, size: int) -> None:
        child = self.levels[op.arg].get(size - 1)
        if child is None or op.out == BIG and not self.digits or op.input_only and size != 2:
            return
        values, exprs = child.values, child.exprs
        if op.out == BIG:  # int('') fails: only non-empty strings have a value
            keep = [i for i, row in enumerate(values) if all(len(s) for s in row)]
            values, exprs = values[keep], [exprs[i] for i in keep]
        for literal in op.params(self, values):
            taken = np.arange(len(values)) if op.takes is None else np.flatnonzero(op.takes(values, literal))
            if not len(taken):
                continue
            out = op.apply(values[taken], literal)
            self._emit(op.out, size, out, lambda rows, lit=literal, taken=taken: [
                op.render(exprs[taken[r]], lit) for r in rows])

    def _binary(self, op: _Binary, size: int) -> None:
        left_type, right_type = op.args
        for left_size in range(1, size - 1):
            right_size = size - 1 - left_size
            if op.commutative and left_size > right_size:
                continue
            left, right = self.levels[left_type].get(left_size), self.levels[right_type].get(right_size)
            if left is None or right is None:
                continue
            a, b = left.values, right.values
            same = op.commutative and left_size == right_size
            rows_per_chunk = max(1, CHUNK_ELEMENTS // max(1, len(b) * self.n))
            for start in range(0, len(a), rows_per_chunk):
                i, j = np.nonzero(np.ones((min(rows_per_chunk, len(a) - start), len(b)), dtype=bool))
                i += start
                if same:  # each unordered pair once
                    i, j = i[j > i], j[j > i]
                if not len(i):
                    continue
                out = op.apply(a[i], b[j])
                self._emit(op.out, size, out, lambda rows, i=i, j=j, le=left.exprs, re=right.exprs: [
                    op.render.format(a=le[i[r]], b=re[j[r]]) for r in rows])

    def run(self, keep: int) -> Enumeration:
        try:
            self._terminals()
            for size in range(2, MAX_SIZE + 1):
                for unary in UNARY:
                    self._unary(unary, size)
                for binary in BINARY:
                    self._binary(binary, size)
        except _Stop:
            pass
        return self._result(keep)

    def _result(self, keep: int) -> Enumeration:
        exprs: list[str] = []
        sizes: list[int] = []
        chunks: list[np.ndarray] = []
        for size, level in sorted(self.levels[BIT].items()):
            chunks.append(level.values)
            exprs.extend(level.exprs)
            sizes.extend([size] * len(level.exprs))
        values = np.concatenate(chunks) if chunks else np.empty((0, len(self.packed_labels)), dtype=np.uint8)
        wrong = _POPCOUNT[values ^ self.packed_labels].sum(axis=1, dtype=np.int64)
        accuracy = (self.n - wrong) / self.n  # exactly correct / all, like the verifier
        # Enumeration order is already size order, so a stable sort on accuracy alone breaks ties
        # by size, then by order.
        order = np.argsort(-accuracy, kind="stable")[:keep]
        best = tuple(Program(exprs[i], sizes[i], float(accuracy[i])) for i in order)
        distinct = sum(len(level.exprs) for levels in self.levels.values() for level in levels.values())
        return Enumeration(best, self.enumerated, distinct, time.perf_counter() - self.start,
                           self.solved, self.budget_exhausted and not self.solved)


def enumerate_programs(
    inputs: Sequence[str],
    labels: Sequence[int],
    *,
    max_programs: int = 200_000,
    max_seconds: float = 20.0,
    keep: int = 100,
) -> Enumeration:
    """Enumerate programs smallest first until one fits every example or the budget is spent,
    and return the `keep` best.

    Deterministic for a given budget in programs; `max_seconds` is a safety net whose cut-off
    point depends on the machine.
    """
    if not inputs or len(inputs) != len(labels):
        raise ValueError(f"need matching non-empty inputs and labels, got {len(inputs)} and {len(labels)}")
    return _Search(inputs, labels, max_programs, max_seconds).run(keep)


__all__ = ["DSL_VERSION", "ISPRIME_SOURCE", "Enumeration", "Program", "enumerate_programs", "mine_substrings"]

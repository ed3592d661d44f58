"""Rules over tabular rows for the enumerate proposer: thresholds, category tests, and/or, smallest first.

A program is a boolean expression over `x`, the dict a tabular row becomes. Its atoms are

- numeric features (every known value an int or float): `x[k] <= t` and `x[k] > t` for one
  threshold t between each two neighbouring training values (the roundest number in the gap; a
  missing value, None, satisfies neither: the emitted code tests `x[k] is not None` first);
- any other feature: `x[k] == v` and `x[k] != v` for every training value v (`is None` for missing).

Size = number of atoms. Size 1 is the atoms, size 2 every `(a and b)` / `(a or b)` of two atoms,
size s > 2 a size s-1 program joined with one more atom. As in the string DSL, only the first program
of each behaviour on the training rows is kept (observational equivalence), and the search stops at
the first program that fits every training row or when the budget (programs or seconds) is spent.
Within a size, atoms are combined the more informative first (training accuracy farthest from 1/2),
pairs in growing squares, so a budget cut keeps the promising part.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llm_erm.proposers.dsl import Enumeration, Program

MAX_SIZE = 8  # the banks stop growing long before; only guarantees the loop ends

_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint8)


class _Stop(Exception):
    pass


def _literal(value: object) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def threshold(low: float, high: float) -> float:
    """The roundest number strictly between two neighbouring training values: `x <= t` splits the
    training rows exactly as the midpoint would, and reads better (141 rather than 140.67000000000002)."""
    middle = (low + high) / 2
    for digits in range(-15, 17):
        t = round(middle, digits)
        if low < t < high:
            return float(t)
    return middle


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def atoms(rows: Sequence[dict], keys: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """Every atom as (expression, boolean values on the rows), in feature order."""
    out: list[tuple[str, np.ndarray]] = []
    for key in keys:
        values = [row.get(key) for row in rows]
        ref = f"x[{key!r}]"
        known = [v for v in values if v is not None]
        if known and all(_is_number(v) for v in known):
            array = np.array([np.nan if v is None else float(v) for v in values])
            distinct = sorted(set(known))
            for low, high in zip(distinct, distinct[1:], strict=False):
                t = threshold(low, high)
                lit = _literal(t)
                out.append((f"({ref} is not None and {ref} <= {lit})", array <= t))
                out.append((f"({ref} is not None and {ref} > {lit})", array > t))
        else:
            distinct = sorted(set(values), key=lambda v: (v is not None, type(v).__name__, repr(v)))
            for v in distinct:
                if v is None:
                    hits = np.array([x is None for x in values])
                    out.append((f"({ref} is None)", hits))
                    out.append((f"({ref} is not None)", ~hits))
                else:
                    hits = np.array([x == v for x in values], dtype=bool)
                    out.append((f"({ref} == {_literal(v)})", hits))
                    out.append((f"({ref} != {_literal(v)})", ~hits))
    return out


@dataclass
class _Bank:
    values: list[np.ndarray]  # packed bits per program
    exprs: list[str]
    size: int


class _RuleSearch:
    def __init__(self, rows: Sequence[dict], labels: Sequence[int], max_programs: int, max_seconds: float):
        self.n = len(rows)
        self.labels = np.array([bool(y) for y in labels])
        self.packed_labels = np.packbits(self.labels)
        self.target_key = self.packed_labels.tobytes()
        self.mask = np.packbits(np.ones(self.n, dtype=bool))
        self.keys = list(dict.fromkeys(k for row in rows for k in row))
        self.rows = rows
        self.max_programs = max_programs
        self.start = time.perf_counter()
        self.deadline = self.start + max_seconds
        self.seen: set[bytes] = {np.zeros_like(self.mask).tobytes(), self.mask.tobytes()}  # constants
        self.banks: list[_Bank] = []
        self.enumerated = 0
        self.solved = False
        self.budget_exhausted = False

    def _emit(self, bank: _Bank, block: np.ndarray, render) -> None:
        """Keep the rows of the packed `block` that show a new behaviour; stop on a fit or the budget."""
        room = self.max_programs - self.enumerated
        truncated = len(block) > room
        if truncated:
            block = block[:room]
        for i in range(len(block)):
            key = block[i].tobytes()
            if key in self.seen:
                continue
            self.seen.add(key)
            bank.values.append(block[i])
            bank.exprs.append(render(i))
            if key == self.target_key:
                self.solved = True
                self.enumerated += i + 1
                raise _Stop
        self.enumerated += len(block)
        if truncated or time.perf_counter() > self.deadline:
            self.budget_exhausted = True
            raise _Stop

    def _score(self, packed: np.ndarray) -> np.ndarray:
        wrong = _POPCOUNT[packed ^ self.packed_labels].sum(axis=-1, dtype=np.int64)
        return (self.n - wrong) / self.n

    def run(self, keep: int) -> Enumeration:
        try:
            self._atoms()
            first = self.banks[0]
            if first.values:
                # Combine the most informative atoms first.
                order = np.argsort(-np.abs(self._score(np.stack(first.values)) - 0.5), kind="stable")
                atom_values = np.stack([first.values[i] for i in order])
                atom_exprs = [first.exprs[i] for i in order]
                self._pairs(atom_values, atom_exprs)
                for size in range(3, MAX_SIZE + 1):
                    if not self._extend(size, atom_values, atom_exprs):
                        break
        except _Stop:
            pass
        return self._result(keep)

    def _atoms(self) -> None:
        bank = _Bank([], [], 1)
        self.banks.append(bank)
        found = atoms(self.rows, self.keys)
        if found:
            block = np.packbits(np.stack([v for _, v in found]), axis=1)
            self._emit(bank, block, lambda i: found[i][0])

    def _pairs(self, values: np.ndarray, exprs: list[str]) -> None:
        bank = _Bank([], [], 2)
        self.banks.append(bank)
        for j in range(1, len(values)):
            left = values[:j]
            for op, word in ((np.bitwise_and, "and"), (np.bitwise_or, "or")):
                block = op(left, values[j])
                self._emit(bank, block, lambda i, j=j, word=word: f"({exprs[i]} {word} {exprs[j]})")

    def _extend(self, size: int, values: np.ndarray, exprs: list[str]) -> bool:
        previous = self.banks[-1]
        if not previous.values:
            return False
        bank = _Bank([], [], size)
        self.banks.append(bank)
        for program, expr in zip(list(previous.values), list(previous.exprs), strict=True):
            for op, word in ((np.bitwise_and, "and"), (np.bitwise_or, "or")):
                block = op(values, program)
                self._emit(bank, block, lambda i, expr=expr, word=word: f"({expr} {word} {exprs[i]})")
        return True

    def _result(self, keep: int) -> Enumeration:
        exprs: list[str] = []
        sizes: list[int] = []
        values: list[np.ndarray] = []
        for bank in self.banks:
            exprs += bank.exprs
            sizes += [bank.size] * len(bank.exprs)
            values += bank.values
        if values:
            accuracy = self._score(np.stack(values))
            order = np.argsort(-accuracy, kind="stable")[:keep]  # banks are in size order: ties keep the smaller
            best = tuple(Program(exprs[i], sizes[i], float(accuracy[i])) for i in order)
        else:
            best = ()
        return Enumeration(best, self.enumerated, len(exprs), time.perf_counter() - self.start,
                           self.solved, self.budget_exhausted and not self.solved)


def enumerate_rules(
    rows: Sequence[dict],
    labels: Sequence[int],
    *,
    max_programs: int = 200_000,
    max_seconds: float = 20.0,
    keep: int = 100,
) -> Enumeration:
    """Enumerate rules over the rows smallest first until one fits every row or the budget is spent;
    return the `keep` best (training accuracy, then size, then enumeration order)."""
    if not rows or len(rows) != len(labels):
        raise ValueError(f"need matching non-empty rows and labels, got {len(rows)} and {len(labels)}")
    return _RuleSearch(rows, labels, max_programs, max_seconds).run(keep)


__all__ = ["atoms", "enumerate_rules", "threshold"]

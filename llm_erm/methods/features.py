"""Per-position features for the classical learners (and the symbol table the torch learners share).

Strings (the synthetic targets): one column per position per symbol of the alphabet, 1.0 where the
input has that symbol there ("onehot", the default), except that a binary position is a single
column holding the bit (its '0' column would be the complement, a redundant copy). Decimal digits
are one-hot too, not their value: "ends in an even digit" is then one split, not a range query, and
a linear model can weigh each digit separately. "ordinal" gives one column per position with the
symbol's index (the digit value for decimal; the fork's encoding), for comparison; "upstream" is that with
the official runner's codes for edge strings (u = 10, v = 11).

Tabular rows (dicts): a column is numeric when every non-missing training value is a number (or a
string that parses as a finite number); numeric columns are the value, missing values imputed
with the training median; every other column is one-hot over the training categories (missing is
its own category; a category unseen in training gives all zeros).

Everything is fit on the training inputs only and applied unchanged to the test inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from llm_erm.errors import UsageError

# The symbols of each built-in alphabet, in index order (the torch learners' token ids too).
ALPHABET_SYMBOLS: dict[str, str] = {
    "binary": "01",
    "decimal": "0123456789",
    "edges": "uv0123456789",
}
ENCODINGS = ("onehot", "ordinal", "upstream")
# "upstream": the official baseline runner's parse_data: a digit is its value, 'u' 10, 'v' 11 (ordinal with
# that symbol order; the same as "ordinal" for binary and decimal strings).
UPSTREAM_SYMBOLS = "0123456789uv"
MISSING = {"", "?", "nan", "NaN", "None", "null", "NA"}


def symbols_for(alphabet: str, inputs: Sequence[str]) -> str:
    """The alphabet's symbols; for an alphabet we do not know, the characters seen in `inputs`."""
    if alphabet in ALPHABET_SYMBOLS:
        return ALPHABET_SYMBOLS[alphabet]
    return "".join(sorted({c for x in inputs for c in x}))


def encode_symbols(inputs: Sequence[str], symbols: str, width: int) -> np.ndarray:
    """(n, width) int16 symbol indices; -1 for an unknown symbol or a position past the input's end
    (inputs longer than `width` are cut)."""
    lookup = np.full(0x110000 if any(ord(c) > 255 for c in symbols) else 256, -1, dtype=np.int16)
    for i, c in enumerate(symbols):
        lookup[ord(c)] = i
    n = len(inputs)
    if n and all(len(x) == width for x in inputs):
        try:
            raw = np.frombuffer("".join(inputs).encode("latin-1"), dtype=np.uint8).reshape(n, width)
            return lookup[raw]
        except UnicodeEncodeError:
            pass
    codes = np.full((n, width), -1, dtype=np.int16)
    for row, x in enumerate(inputs):
        for col, c in enumerate(x[:width]):
            o = ord(c)
            codes[row, col] = lookup[o] if o < len(lookup) else -1
    return codes


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() in MISSING


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


class Featurizer:
    """Fit on the training inputs, then `transform` any inputs to a float32 matrix."""

    def __init__(self, alphabet: str, length: int, encoding: str = "onehot") -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}")
        self.alphabet = alphabet
        self.length = length
        self.encoding = encoding
        self.kind: str | None = None  # "strings" | "rows"
        self.names: list[str] = []
        # strings
        self.symbols = ""
        self.width = 0
        # rows
        self.numeric: list[str] = []
        self.medians: dict[str, float] = {}
        self.categories: dict[str, list[str]] = {}

    def fit(self, inputs: Sequence[Any]) -> Featurizer:
        if not inputs:
            raise UsageError("no training inputs to fit features on")
        if all(isinstance(x, str) for x in inputs):
            self._fit_strings(inputs)
        elif all(isinstance(x, Mapping) for x in inputs):
            self._fit_rows(inputs)
        else:
            raise UsageError("training inputs must be all strings or all dicts (tabular rows)")
        return self

    def transform(self, inputs: Sequence[Any]) -> np.ndarray:
        if self.kind == "strings":
            if not all(isinstance(x, str) for x in inputs):
                raise UsageError("features were fit on strings but these inputs are not all strings")
            return self._transform_strings(inputs)
        if self.kind == "rows":
            if not all(isinstance(x, Mapping) for x in inputs):
                raise UsageError("features were fit on tabular rows but these inputs are not all dicts")
            return self._transform_rows(inputs)
        raise RuntimeError("Featurizer.transform before fit")

    # ---------------------------------------------------------------- strings

    def _fit_strings(self, inputs: Sequence[str]) -> None:
        self.kind = "strings"
        self.symbols = UPSTREAM_SYMBOLS if self.encoding == "upstream" else symbols_for(self.alphabet, inputs)
        self.width = max(self.length, max(len(x) for x in inputs))
        if self.encoding in ("ordinal", "upstream") or self._single_bit():
            self.names = [f"x{i}" for i in range(self.width)]
        else:
            self.names = [f"x{i}={s}" for i in range(self.width) for s in self.symbols]

    def _single_bit(self) -> bool:
        return self.symbols == "01"

    def _transform_strings(self, inputs: Sequence[str]) -> np.ndarray:
        codes = encode_symbols(inputs, self.symbols, self.width)
        if self.encoding in ("ordinal", "upstream"):
            return codes.astype(np.float32)
        if self._single_bit():
            return (codes == 1).astype(np.float32)
        k = len(self.symbols)
        onehot = codes[:, :, None] == np.arange(k, dtype=np.int16)[None, None, :]
        return onehot.reshape(len(inputs), self.width * k).astype(np.float32)

    # ---------------------------------------------------------------- tabular rows

    def _fit_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.kind = "rows"
        columns: dict[str, None] = {}
        for row in rows:
            for key in row:
                columns.setdefault(str(key), None)
        self.names = []
        for col in columns:
            values = [row.get(col) for row in rows]
            present = [v for v in values if not _is_missing(v)]
            numbers = [_as_number(v) for v in present]
            if present and all(n is not None for n in numbers):
                self.numeric.append(col)
                self.medians[col] = float(np.median(np.array(numbers, dtype=np.float64)))
                self.names.append(col)
            else:
                cats = sorted({"?" if _is_missing(v) else str(v) for v in values})
                self.categories[col] = cats
                self.names.extend(f"{col}={c}" for c in cats)

    def _transform_rows(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        out = np.zeros((len(rows), len(self.names)), dtype=np.float32)
        index = {name: i for i, name in enumerate(self.names)}
        for r, row in enumerate(rows):
            for col in self.numeric:
                value = row.get(col)
                number = None if _is_missing(value) else _as_number(value)
                out[r, index[col]] = self.medians[col] if number is None else number
            for col in self.categories:
                value = row.get(col)
                key = f"{col}={'?' if _is_missing(value) else str(value)}"
                if key in index:
                    out[r, index[key]] = 1.0
        return out

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"encoding": self.encoding, "n_features": len(self.names), "kind": self.kind}
        if self.kind == "strings":
            facts.update(symbols=self.symbols, width=self.width)
        else:
            facts.update(numeric_columns=len(self.numeric), categorical_columns=len(self.categories))
        return facts

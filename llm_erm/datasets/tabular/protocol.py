"""How a table row is shown: the raw protocol and the clean protocol, and reading a row back.

A row renders as `k1:v1,k2:v2,...` (feature order of the table); a missing value is `?`.

- raw: the table's own feature names and values.
- clean (the fork's protocol): names x0, x1, ...; each categorical feature's values become codes
  c0, c1, ... (a seeded random assignment, so the codes' order says nothing about the values);
  each numeric feature goes through its own positive affine map y = a*x + b, with a = p/100 for a
  seeded integer p in [50, 200] and b = q * u / 10 for a seeded integer q in [-50, 50], u the power
  of ten of the feature's largest magnitude in the table. The arithmetic is exact decimal, so every
  value maps back exactly: x = (y - b) / a. The parameters come from the table and the base seed
  only (not the split sizes), so every dataset of a table at one base seed shares one encoding.

`parse_row` turns a rendered row into the dict that `f` receives: `?` -> None, integers -> int,
decimals -> float, anything else -> str.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from llm_erm.datasets.tabular.table import Row, Table, canonical_number
from llm_erm.datasets.tabular.tables import NUMERIC
from llm_erm.errors import UsageError

RAW, CLEAN = "raw", "clean"
PROTOCOLS = (RAW, CLEAN)
DEFAULT_PROTOCOL = CLEAN
MISSING = "?"
_PRECISION = 80  # digits of exact decimal arithmetic: far beyond any table value times a 3-digit scale

_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+\.\d+")


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown tabular protocol {protocol!r}: use {' or '.join(PROTOCOLS)}")


def typed_value(text: str) -> int | float | str | None:
    if text == MISSING:
        return None
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def parse_row(text: str) -> dict[str, int | float | str | None]:
    """The dict of typed values of one rendered row `k1:v1,k2:v2,...`."""
    row = {}
    for pair in text.split(","):
        key, _, value = pair.partition(":")
        row[key] = typed_value(value)
    return row


def row_pairs(text: str) -> list[tuple[str, str]]:
    return [(key, value) for key, _, value in (pair.partition(":") for pair in text.split(","))]


@dataclass(frozen=True)
class Encoding:
    """One table's rendering under one protocol (and, for clean, one base seed)."""

    protocol: str
    names: tuple[str, ...]  # the table's feature names
    kinds: tuple[str, ...]
    keys: tuple[str, ...]  # the names shown
    affine: tuple[tuple[Decimal, Decimal] | None, ...]  # numeric features under clean: (a, b)
    codes: tuple[dict[str, str] | None, ...]  # categorical features under clean: value -> code

    def render(self, row: Row) -> str:
        return ",".join(f"{key}:{self._value(i, v)}" for i, (key, v) in enumerate(zip(self.keys, row, strict=True)))

    def _value(self, i: int, value: str | None) -> str:
        if value is None:
            return MISSING
        if self.affine[i] is not None:
            a, b = self.affine[i]
            with localcontext() as ctx:
                ctx.prec = _PRECISION
                return canonical_number(Decimal(value) * a + b)
        if self.codes[i] is not None:
            return self.codes[i][value]
        return value

    def invert(self, text: str) -> Row:
        """The table row (canonical raw values) that `render` turned into `text`."""
        pairs = row_pairs(text)
        if [k for k, _ in pairs] != list(self.keys):
            raise ValueError(f"not a row of this encoding: {text[:60]!r}")
        out = []
        for i, (_, value) in enumerate(pairs):
            if value == MISSING:
                out.append(None)
            elif self.affine[i] is not None:
                a, b = self.affine[i]
                with localcontext() as ctx:
                    ctx.prec = _PRECISION
                    out.append(canonical_number((Decimal(value) - b) / a))
            elif self.codes[i] is not None:
                out.append(self._decode(i)[value])
            else:
                out.append(value)
        return tuple(out)

    def _decode(self, i: int) -> dict[str, str]:
        return {code: value for value, code in self.codes[i].items()}

    def describe(self) -> list[dict]:
        """meta.json's record of the encoding: enough to translate a learned rule back to the table."""
        features = []
        for i, (name, kind, key) in enumerate(zip(self.names, self.kinds, self.keys, strict=True)):
            item: dict = {"key": key, "name": name, "kind": kind}
            if self.affine[i] is not None:
                a, b = self.affine[i]
                item.update(scale=canonical_number(a), offset=canonical_number(b), inverse="x = (value - offset) / scale")
            if self.codes[i] is not None:
                item["codes"] = dict(sorted(self.codes[i].items()))
            features.append(item)
        return features


def encoding_for(table: Table, protocol: str, base_seed: int) -> Encoding:
    check_protocol(protocol)
    definition = table.definition
    names = definition.feature_names
    kinds = tuple(f.kind for f in definition.features)
    n = len(names)
    if protocol == RAW:
        return Encoding(RAW, names, kinds, names, (None,) * n, (None,) * n)
    digest = hashlib.sha256(f"clean|{definition.target_id}|base_seed={base_seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big") & 0x7FFFFFFF)
    affine: list[tuple[Decimal, Decimal] | None] = []
    codes: list[dict[str, str] | None] = []
    for i, kind in enumerate(kinds):
        column = [v for v in table.column(i) if v is not None]
        if kind == NUMERIC:
            p, q = int(rng.integers(50, 201)), int(rng.integers(-50, 51))
            largest = max((abs(Decimal(v)) for v in column), default=Decimal(0))
            unit = Decimal(1).scaleb(largest.adjusted()) if largest else Decimal(1)
            affine.append((Decimal(p) / 100, Decimal(q) * unit / 10))
            codes.append(None)
        else:
            values = sorted(set(column))
            order = rng.permutation(len(values))
            width = len(str(max(len(values) - 1, 0)))
            codes.append({v: f"c{int(order[j]):0{width}d}" for j, v in enumerate(values)})
            affine.append(None)
    keys = tuple(f"x{i}" for i in range(n))
    return Encoding(CLEAN, names, kinds, keys, tuple(affine), tuple(codes))

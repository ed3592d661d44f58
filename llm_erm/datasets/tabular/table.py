"""A loaded table in canonical form, the readers that produce it, and its cache file.

Every source (a local file, the cache, a packaged copy, a download) ends in the same `Table`:
one canonical text value per feature (numbers as plain decimals without exponent or trailing
zeros, categories as stripped strings, None for a missing value), an integer label per row, and
the rows sorted by their serialised text. The serialisation is the cache file, and its SHA-256 is
the table's content hash: two sources that hold the same rows give the same hash, whatever their
row order or number formatting.

Missing values: '' and '?' (and NaN from pandas; for numbers also 'nan', 'NA', 'null') are missing.
Values are stripped of surrounding whitespace and ARFF quotes; a ',' or ':' inside a value (which the
`k:v,...` row format cannot carry) becomes ';' or '='. A row without a label is dropped and counted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path

from llm_erm.datasets.tabular.tables import NUMERIC, TableDef
from llm_erm.errors import UsageError

CACHE_FORMAT = 1
NUMBER_MISSING = frozenset({"", "?", "nan", "na", "n/a", "null", "none"})
CATEGORY_MISSING = frozenset({"", "?"})
SKIP_PREFIXES = ("|", "%")  # UCI's adult.test starts with "|1x3 Cross validator"; ARFF comments

Row = tuple[str | None, ...]


def canonical_number(value: object) -> str:
    """Plain decimal text of a number: '24.0' -> '24', '0.0060' -> '0.006', '1E-3' -> '0.001'.

    Raises ValueError when it is not a finite number.
    """
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    if number == number.to_integral_value():
        return str(int(number))
    return format(number, "f").rstrip("0").rstrip(".")


def norm_name(name: str) -> str:
    """Column names compared loosely: 'education-num', 'Education_Num' and 'education num' match."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().strip("'\"").lower()).strip("_")


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _clean_text(value: object) -> str:
    text = str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text


def label_token(value: object) -> str:
    """'>50K.' -> '>50k', 1.0 -> '1', " 'good' " -> 'good'."""
    text = _clean_text(value).rstrip(".").lower()
    try:
        return canonical_number(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Table:
    """A table in canonical form. `source` says where it came from originally (never 'the cache')."""

    definition: TableDef
    rows: tuple[Row, ...]
    labels: tuple[int, ...]
    source: dict = field(compare=False)
    dropped: dict = field(default_factory=dict, compare=False)

    @cached_property
    def csv_bytes(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*self.definition.feature_names, "label"])
        for row, label in zip(self.rows, self.labels, strict=True):
            writer.writerow(["" if v is None else v for v in row] + [label])
        return out.getvalue().encode("utf-8")

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.csv_bytes).hexdigest()

    def column(self, index: int) -> list[str | None]:
        return [row[index] for row in self.rows]


def build_table(definition: TableDef, records: Iterable[tuple[dict[str, object], object]], source: dict) -> Table:
    """Canonical rows from (feature name -> raw value, raw label) records, sorted by their serialised text."""
    kinds = [f.kind for f in definition.features]
    names = definition.feature_names
    out: list[tuple[Row, int]] = []
    missing_label = 0
    for values, raw_label in records:
        if raw_label is None or _is_nan(raw_label) or _clean_text(raw_label) in CATEGORY_MISSING:
            missing_label += 1
            continue
        token = label_token(raw_label)
        if token in definition.positive:
            label = 1
        elif token in definition.negative:
            label = 0
        else:
            raise UsageError(
                f"{definition.title}: unknown label {raw_label!r} in column {definition.label!r} "
                f"(expected one of {', '.join(sorted(definition.positive | definition.negative))}); "
                "is this the right file for the target?"
            )
        row = tuple(_canonical_value(definition, name, kind, values.get(name))
                    for name, kind in zip(names, kinds, strict=True))
        out.append((row, label))
    if not out:
        raise UsageError(f"{definition.title}: the source has no labelled rows")

    def line(item: tuple[Row, int]) -> tuple:
        return tuple("" if v is None else v for v in item[0]) + (item[1],)

    out.sort(key=line)
    dropped = {"missing_label": missing_label} if missing_label else {}
    return Table(definition, tuple(r for r, _ in out), tuple(y for _, y in out), source, dropped)


def _canonical_value(definition: TableDef, name: str, kind: str, value: object) -> str | None:
    if value is None or _is_nan(value):
        return None
    text = _clean_text(value)
    if kind == NUMERIC:
        if text.lower() in NUMBER_MISSING:
            return None
        try:
            return canonical_number(text)
        except ValueError:
            raise UsageError(
                f"{definition.title}: column {name!r} is numeric, but holds {text!r}; "
                "is this the right file for the target?"
            ) from None
    if text in CATEGORY_MISSING:
        return None
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))  # a category stored as a float by pandas: 1.0 -> '1'
    return text.replace(",", ";").replace(":", "=").replace("\n", " ").replace("\r", " ")


# ---------------------------------------------------------------- reading delimited text and ARFF


def _decode(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(SKIP_PREFIXES)]


def _split_rows(lines: Sequence[str], quotechar: str = '"') -> list[list[str]]:
    first = lines[0]
    if first.count(";") > first.count(","):
        delimiter = ";"
    elif "," in first:
        delimiter = ","
    else:
        return [line.split() for line in lines]  # whitespace-separated (UCI's german.data)
    return [list(r) for r in csv.reader(lines, delimiter=delimiter, quotechar=quotechar, skipinitialspace=True)]


def _column_map(definition: TableDef) -> dict[str, str]:
    names = {norm_name(n): n for n in definition.feature_names}
    names[norm_name(definition.label)] = definition.label
    for alias, name in definition.aliases.items():
        names.setdefault(norm_name(alias), name)
    return names


def records_from_columns(
    definition: TableDef, header: Sequence[str] | None, rows: Iterable[Sequence[object]], what: str
) -> list[tuple[dict[str, object], object]]:
    """Records from rows whose columns are named by `header` (extra columns ignored), or, without a
    header, laid out as the original headerless file: `definition.headerless` or features + label."""
    if header is None:
        order = list(definition.headerless or (*definition.feature_names, definition.label))
    else:
        known = _column_map(definition)
        order = [known.get(norm_name(h), f"\0{h}") for h in header]
        missing = [n for n in (*definition.feature_names, definition.label) if n not in order]
        if missing:
            raise UsageError(
                f"{what}: no column for {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
                f"({definition.title} needs {definition.n_features} features and {definition.label!r})"
            )
    records = []
    for number, row in enumerate(rows, start=1):
        if len(row) != len(order):
            raise UsageError(
                f"{what}: row {number} has {len(row)} fields, expected {len(order)} "
                f"({definition.title}: {definition.n_features} features and the label)"
            )
        values = dict(zip(order, row, strict=True))
        records.append((values, values[definition.label]))
    return records


def _looks_like_header(definition: TableDef, row: Sequence[str]) -> bool:
    known = _column_map(definition)
    hits = sum(norm_name(cell) in known for cell in row)
    return norm_name(definition.label) in {norm_name(c) for c in row} or hits >= max(2, definition.n_features // 2)


def read_delimited(definition: TableDef, data: bytes, what: str, headerless: bool | None = None):
    """Records of a CSV (',' or ';') or whitespace-separated text, with or without a header line."""
    lines = _lines(_decode(data))
    if not lines:
        raise UsageError(f"{what} is empty")
    rows = _split_rows(lines)
    has_header = _looks_like_header(definition, rows[0]) if headerless is None else not headerless
    header = rows[0] if has_header else None
    return records_from_columns(definition, header, rows[1:] if has_header else rows, what)


_ATTRIBUTE = re.compile(r"@attribute\s+('(?:[^']|\\')*'|\"[^\"]*\"|\S+)", re.IGNORECASE)


def read_arff(definition: TableDef, data: bytes, what: str):
    """Records of a dense ARFF file (OpenML's download format; weka's example files)."""
    header: list[str] = []
    body: list[str] = []
    in_data = False
    for line in _decode(data).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("%"):
            continue
        if in_data:
            body.append(stripped)
        elif stripped.lower().startswith("@attribute"):
            match = _ATTRIBUTE.match(stripped)
            if match:
                header.append(match.group(1).strip("'\""))
        elif stripped.lower().startswith("@data"):
            in_data = True
    if not in_data or not header:
        raise UsageError(f"{what}: not an ARFF file (no @attribute/@data sections)")
    if body and body[0].startswith("{"):
        raise UsageError(f"{what}: sparse ARFF is not supported; export it as CSV")
    rows = list(csv.reader(body, delimiter=",", quotechar="'", skipinitialspace=True, escapechar="\\"))
    return records_from_columns(definition, header, rows, what)


def read_file(definition: TableDef, path: Path, source: dict) -> Table:
    """A local copy of the table: UCI's data.csv, the original .data file, an OpenML CSV or ARFF."""
    what = f"table file {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what}: {exc.strerror or exc}") from None
    reader = read_arff if path.suffix.lower() == ".arff" or data.lstrip()[:1] in (b"@", b"%") else read_delimited
    return build_table(definition, reader(definition, data, what), source)


# ---------------------------------------------------------------- the cache


def cache_paths(cache_dir: Path, definition: TableDef) -> tuple[Path, Path]:
    return cache_dir / f"{definition.name}.csv", cache_dir / f"{definition.name}.json"


def write_cache(cache_dir: Path, table: Table) -> bool:
    """Store the canonical table (atomically). False when the cache directory is not writable."""
    data_path, meta_path = cache_paths(cache_dir, table.definition)
    meta = {
        "format": CACHE_FORMAT,
        "target": table.definition.target_id,
        "sha256": table.sha256,
        "rows": len(table.rows),
        "source": table.source,
        "dropped": table.dropped,
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for path, payload in ((data_path, table.csv_bytes), (meta_path, (json.dumps(meta, indent=2) + "\n").encode())):
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=cache_dir)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.replace(tmp, path)
    except OSError:
        return False
    return True


def read_cache(cache_dir: Path, definition: TableDef) -> Table | None:
    """The cached table when it is intact (its hash matches) and of this definition, else None."""
    data_path, meta_path = cache_paths(cache_dir, definition)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = data_path.read_bytes()
    except (OSError, ValueError):
        return None
    if (not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT
            or meta.get("sha256") != hashlib.sha256(data).hexdigest()):
        return None
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    header = next(reader, None)
    if header != [*definition.feature_names, "label"]:
        return None  # written for another version of the definition
    rows, labels = [], []
    for record in reader:
        rows.append(tuple(v if v != "" else None for v in record[:-1]))
        labels.append(int(record[-1]))
    table = Table(definition, tuple(rows), tuple(labels), meta.get("source") or {}, meta.get("dropped") or {})
    table.__dict__["csv_bytes"] = data  # our own writer's bytes, already hash-checked: no second serialisation
    return table

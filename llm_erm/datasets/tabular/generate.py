"""Datasets of the tabular targets: balanced, leak-free splits drawn from a table's distinct rows.

- The *input* of a row is its features. Rows with identical features are one input: kept once when
  all copies agree on the label, dropped when they disagree (no ground truth). So no input can
  appear in two splits, or twice in one. meta.json counts both.
- Per class, the distinct rows (in the table's canonical order) are permuted by a generator seeded
  with the dataset's derived seed (DatasetSpec.derived_seed); train takes the first train/2, val the next
  val/2, test the next test/2. Each split is then the two classes shuffled together.
- Too few rows: train and val never shrink; a class needs train/2 + val/2 rows plus at least one
  for test, else the spec is refused naming the largest train+val that fits. The test split takes
  what is left, up to test/2 per class: with the default 10 000 most tables give a smaller, still
  exactly balanced test split. meta.json records `requested_sizes` and the actual `sizes`.
- The rows selected do not depend on the protocol: the raw and clean datasets of one spec hold the
  same rows in the same order, only rendered differently.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm_erm.datasets.tabular.protocol import RAW, Encoding, check_protocol, encoding_for
from llm_erm.datasets.tabular.sources import load_table
from llm_erm.datasets.tabular.table import Row, Table
from llm_erm.datasets.tabular.tables import get_table
from llm_erm.errors import UsageError

if TYPE_CHECKING:
    from llm_erm.datasets.store import DatasetSpec

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DistinctRows:
    by_class: tuple[tuple[Row, ...], tuple[Row, ...]]  # (label 0, label 1), canonical order
    label: dict[Row, int]
    stats: dict


_distinct_memo: dict[tuple[str, str], DistinctRows] = {}
_lock = threading.Lock()


def distinct_rows(table: Table) -> DistinctRows:
    key = (table.definition.target_id, table.sha256)
    with _lock:
        if key in _distinct_memo:
            return _distinct_memo[key]
    labels: dict[Row, set[int]] = {}
    for row, y in zip(table.rows, table.labels, strict=True):
        labels.setdefault(row, set()).add(y)
    label = {row: next(iter(ys)) for row, ys in labels.items() if len(ys) == 1}
    by_class = (tuple(r for r in labels if label.get(r) == 0), tuple(r for r in labels if label.get(r) == 1))
    stats = {
        "rows": len(table.rows),
        "distinct_inputs": len(labels),
        "duplicate_rows_merged": len(table.rows) - len(labels),
        "conflicting_inputs_dropped": len(labels) - len(label),
        "class_inputs": {"0": len(by_class[0]), "1": len(by_class[1])},
        "missing_values": sum(v is None for row in table.rows for v in row),
        **({"rows_without_label_dropped": table.dropped["missing_label"]} if table.dropped else {}),
    }
    result = DistinctRows(by_class, label, stats)
    with _lock:
        _distinct_memo[key] = result
    return result


def spec_table(spec: DatasetSpec) -> Table:
    return load_table(spec.target_obj.id, spec.table_file)


def params(spec: DatasetSpec) -> dict:
    """What of the table enters the dataset id: its content hash and the protocol."""
    check_protocol(spec.protocol)
    table = spec_table(spec)
    return {"table": table.definition.name, "table_sha256": table.sha256, "protocol": spec.protocol}


def _halves(spec: DatasetSpec, distinct: DistinctRows) -> tuple[int, int, int]:
    """(train, val, test) rows per class, after the checks; test may be smaller than asked."""
    definition = get_table(spec.target_obj.id)
    n_train, n_val, n_test = spec.train_size // 2, spec.val_size // 2, spec.test_size // 2
    smallest = min(len(c) for c in distinct.by_class)
    if smallest < n_train + n_val + 1:
        fit = 2 * max(smallest - 1, 0)
        counts = distinct.stats["class_inputs"]
        raise UsageError(
            f"{definition.target_id} ({definition.name}) has {counts['0']} distinct inputs with label 0 and "
            f"{counts['1']} with label 1; train+val need {n_train + n_val} of each class plus one for test: "
            f"use --train-size/--val-size with train+val <= {fit}"
        )
    return n_train, n_val, min(n_test, smallest - n_train - n_val)


def validate(spec: DatasetSpec) -> None:
    check_protocol(spec.protocol)
    _halves(spec, distinct_rows(spec_table(spec)))


@dataclass(frozen=True)
class TabularSplits:
    rows: dict[str, list[tuple[Row, int]]]
    encoding: Encoding
    table: Table
    distinct: DistinctRows


def draw(spec: DatasetSpec) -> TabularSplits:
    """The rows of each split, in stored order, and the encoding that renders them."""
    table = spec_table(spec)
    distinct = distinct_rows(table)
    n_train, n_val, n_test = _halves(spec, distinct)
    pos_rng, neg_rng, shuffle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(spec.derived_seed).spawn(3))
    picked = {}
    for label, rng in ((1, pos_rng), (0, neg_rng)):
        pool = distinct.by_class[label]
        order = rng.permutation(len(pool))
        picked[label] = {
            "train": [pool[i] for i in order[:n_train]],
            "val": [pool[i] for i in order[n_train:n_train + n_val]],
            "test": [pool[i] for i in order[n_train + n_val:n_train + n_val + n_test]],
        }
    rows = {}
    for split in SPLITS:
        both = [(r, 1) for r in picked[1][split]] + [(r, 0) for r in picked[0][split]]
        rows[split] = [both[i] for i in shuffle_rng.permutation(len(both))]
    return TabularSplits(rows, encoding_for(table, spec.protocol, spec.seed), table, distinct)


def generate(spec: DatasetSpec, generator_version: str) -> tuple[dict[str, bytes], dict]:
    """The split files' bytes and meta.json's content for a tabular spec (nothing written)."""
    from llm_erm.datasets.store import SEPARATOR

    drawn = draw(spec)
    encoding = drawn.encoding
    lines = {split: [encoding.render(row) for row, _ in items] for split, items in drawn.rows.items()}
    # The ground truth has the last word: every stored line maps back to a table row of its label,
    # and no input is in two splits.
    seen: set[str] = set()
    for split, items in drawn.rows.items():
        for text, (_, y) in zip(lines[split], items, strict=True):
            if drawn.distinct.label.get(encoding.invert(text)) != y or text in seen:
                raise RuntimeError(f"generator bug: {spec.describe()} {split} row {text[:60]!r} stored as {y}")
            seen.add(text)
    files = {split: "".join(f"{x}{SEPARATOR}{y}\n" for x, (_, y) in zip(lines[split], items, strict=True))
             .encode("utf-8") for split, items in drawn.rows.items()}
    sizes = {split: len(items) for split, items in drawn.rows.items()}
    definition = drawn.table.definition
    meta = {
        "target_id": definition.target_id,
        "target_name": definition.name,
        "alphabet": "tabular",
        "length": spec.length,
        "base_seed": spec.seed,
        "derived_seed": spec.derived_seed,
        "sizes": sizes,
        "requested_sizes": spec.sizes,
        "positives": {s: sum(y for _, y in items) for s, items in drawn.rows.items()},
        "distinct_inputs": sizes,
        "generator_version": generator_version,
        "params": spec.params,
        "dataset_id": spec.dataset_id,
        "sha256": {s: hashlib.sha256(data).hexdigest() for s, data in files.items()},
        "protocol": spec.protocol,
        "features": encoding.describe(),
        "table": {
            "title": definition.title,
            "sha256": drawn.table.sha256,
            "source": drawn.table.source,
            "licence": definition.licence,
            **drawn.distinct.stats,
        },
    }
    return files, meta


def raw_label(target: str, text: str) -> int:
    """The table's label of a row rendered under the raw protocol (the target's ground truth)."""
    table = load_table(target)
    encoding = encoding_for(table, RAW, 0)
    try:
        row = encoding.invert(text)
    except ValueError:
        raise ValueError(f"{text[:60]!r} is not a row of {table.definition.title}") from None
    label = distinct_rows(table).label.get(row)
    if label is None:
        raise ValueError(f"{text[:60]!r} is not a row of {table.definition.title} with one label")
    return label

"""Shared by the methods tests: cells from the real datasets store."""

from __future__ import annotations

from pathlib import Path

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.methods import LabelledData, cell_data

FIRST_BIT = "llm_erm.methods.controls:first_bit"  # the planted positive control


def cell(datasets_dir: Path, target: str, length: int, test_size: int = 10_000,
         train_size: int = 100, val_size: int = 100) -> tuple[LabelledData, LabelledData, str]:
    """(train + val, test, alphabet) of a stored dataset, built through the store as the grid does."""
    spec = DatasetSpec(target, length, train_size=train_size, val_size=val_size, test_size=test_size,
                       alphabet="binary" if ":" in target else None)
    dataset = build_dataset(spec, datasets_dir)
    train, test = cell_data(dataset)
    return train, test, dataset.target.alphabet

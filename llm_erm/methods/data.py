"""From the datasets store to learner inputs, and the specs of a sample-size sweep."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from llm_erm.datasets import Dataset, DatasetSpec, build_dataset
from llm_erm.errors import UsageError
from llm_erm.methods.base import LabelledData

SWEEP_SIZES: tuple[int, ...] = (200, 1_000, 10_000, 100_000)


def cell_data(dataset: Dataset) -> tuple[LabelledData, LabelledData]:
    """(train + val, test) of a stored dataset: what the baselines train and are scored on."""
    train = LabelledData.concat(LabelledData.of(dataset.split("train")), LabelledData.of(dataset.split("val")))
    return train, LabelledData.of(dataset.split("test"))


def sweep_specs(target: str, length: int, sizes: Iterable[int] = SWEEP_SIZES, *, test_size: int = 10_000,
                seed: int = 42, alphabet: str | None = None, duplicates: bool = False) -> list[DatasetSpec]:
    """One spec per training size n (train = val = n/2, as the 200 = 100 + 100 default), validated.

    Each size is its own store (its derived seed has train=n in its key), leak-free within itself:
    its test split shares no input with its train and val. Test splits of different sizes are
    different draws from the same distribution, not the same lines. `duplicates` allows a sweep at a length
    whose space is too small (the paper's n=10): repeated inputs, said so in meta.json (DatasetSpec.duplicates).
    """
    specs = []
    for n in sizes:
        if n < 4 or n % 4:
            raise UsageError(f"sample size {n} must be a multiple of 4 (train = val = n/2, each exactly balanced)")
        spec = DatasetSpec(target, length, train_size=n // 2, val_size=n // 2, test_size=test_size, seed=seed,
                           alphabet=alphabet, duplicates=duplicates)
        spec.validate()
        specs.append(spec)
    return specs


def build_sweep(specs: Iterable[DatasetSpec], datasets_dir: Path) -> list[Dataset]:
    return [build_dataset(spec, datasets_dir) for spec in specs]

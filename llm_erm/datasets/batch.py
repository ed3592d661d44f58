"""Many datasets at once: the spec list of a (targets x lengths) selection, and building it.

Used by `llm-erm datasets build|show` and by the grid flow: first `make_specs` (which validates
every spec, so bad input is refused before anything is written), then `build_all`.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from llm_erm.datasets.store import Dataset, DatasetSpec, build_dataset, open_dataset, validate_specs
from llm_erm.datasets.tabular.protocol import DEFAULT_PROTOCOL, check_protocol
from llm_erm.datasets.tabular.tables import TABULAR_TARGETS
from llm_erm.datasets.targets import SEED_TARGETS, is_user_target, resolve_target
from llm_erm.errors import UsageError


def split_values(values: Iterable[str] | None) -> list[str]:
    """Flatten option values that may hold several items separated by commas or spaces."""
    return [item for value in values or () for item in value.replace(",", " ").split()]


def make_specs(
    targets: Iterable[str] | None = None,
    lengths: Iterable[int] | None = None,
    *,
    train_size: int = 100,
    val_size: int = 100,
    test_size: int = 10000,
    seed: int = 42,
    alphabet: str | None = None,
    protocol: str = DEFAULT_PROTOCOL,
    table_files: Mapping[str, str] | None = None,
    variants: Mapping[str, str] | None = None,
    duplicates: bool = False,
) -> list[DatasetSpec]:
    """Validated specs for every target x length: targets default to the 12 seed targets, lengths
    to each target's own defaults (a tabular target's only length is its number of features);
    `alphabet` applies to user targets (callables, labelled files); `protocol` ("clean" or "raw") and
    `table_files` (target id or name -> local copy of its table) to the tabular targets; `variants` (target
    id or name -> a named sampling variant, generators.VARIANTS) to the targets that offer them; `duplicates`
    allows repeated inputs where a space is too small (DatasetSpec.duplicates)."""
    check_protocol(protocol)
    ids = split_values(targets) or list(SEED_TARGETS)
    files = _table_files(table_files, ids)
    chosen = {resolve_target(k).id: v for k, v in (variants or {}).items()}
    specs = []
    for target_spec in dict.fromkeys(ids):  # keep order, drop repeats
        user = is_user_target(target_spec)
        target = resolve_target(target_spec, alphabet if user else None)
        for length in dict.fromkeys(lengths or target.default_lengths):
            # target.id: a labelled file by its safe name, never the path typed (llm_erm.datasets.custom)
            specs.append(DatasetSpec(target.id, int(length), train_size, val_size,
                                     test_size, seed, alphabet if user else None, protocol,
                                     files.get(target.id) if target.table else None, chosen.get(target.id),
                                     duplicates))
    validate_specs(specs)
    return specs


def _table_files(table_files: Mapping[str, str] | None, ids: list[str]) -> dict[str, str]:
    """Table files keyed by target id; each must name a tabular target of the selection."""
    selected = {resolve_target(i).id for i in ids if not is_user_target(i)}
    files = {}
    for key, path in (table_files or {}).items():
        target = resolve_target(key) if not is_user_target(key) else None
        if target is None or target.table is None:
            raise UsageError(f"--table-file {key}=...: {key} is not a tabular target (tabular: {', '.join(TABULAR_TARGETS)})")
        if target.id not in selected:
            raise UsageError(f"--table-file {key}=...: {target.id} is not among the selected targets; add it to --functions")
        files[target.id] = str(path)
    return files


def _build_one(spec: DatasetSpec, datasets_dir: Path) -> Dataset:
    return build_dataset(spec, datasets_dir)


def _cost_rank(spec: DatasetSpec) -> tuple[bool, int]:
    # Primality at long lengths dominates: start those first so workers finish together.
    return (spec.target_obj.alphabet != "decimal", -spec.length)


def build_all(
    specs: list[DatasetSpec],
    datasets_dir: Path,
    workers: int = 1,
    on_done: Callable[[DatasetSpec, Dataset, bool], None] | None = None,
) -> list[Dataset]:
    """Build (or reuse) every spec's store; returns the datasets in the order of `specs`.

    `on_done(spec, dataset, reused)` is called as each finishes (progress display). Intact stores
    are reused without starting any worker; the rest are built by `workers` processes.
    """
    validate_specs(specs)
    done: dict[DatasetSpec, Dataset] = {}
    todo = []
    for spec in specs:
        existing = open_dataset(spec, datasets_dir)
        if existing is None:
            todo.append(spec)
            continue
        done[spec] = existing
        if on_done:
            on_done(spec, existing, True)
    todo.sort(key=_cost_rank)
    if workers <= 1 or len(todo) <= 1:
        for spec in todo:
            done[spec] = build_dataset(spec, datasets_dir)
            if on_done:
                on_done(spec, done[spec], False)
    else:
        # spawn, not fork: the caller may hold threads (progress bars, Prefect) that fork would copy.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            futures = {pool.submit(_build_one, spec, Path(datasets_dir)): spec for spec in todo}
            for future in as_completed(futures):
                spec = futures[future]
                done[spec] = future.result()
                if on_done:
                    on_done(spec, done[spec], False)
    return [done[spec] for spec in specs]


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))

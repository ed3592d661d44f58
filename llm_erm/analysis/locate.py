"""Where a run's datasets are now: runs are relocatable.

The ledger records each attempt's dataset as the path the run used (relative to the run's working
directory when --datasets-dir was), plus its content-derived `dataset_id`. A run folder and its datasets
folder may since have moved together, or the run alone may have been copied. So a dataset is looked for,
in order, in --datasets-dir (by its `<target name>/L<L>/<seed>` tail), at the recorded path, and beside the
run's results directory; a store counts only when its meta.json carries the recorded dataset_id (same
content). Found nowhere, it is rebuilt into --datasets-dir from the run's own configuration (datasets are
content-hashed, so a rebuild is the very same data, and the id is checked again) and said so. One that
can be neither found nor rebuilt stays where the ledger says: the leakage check reports it "not checked".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Located:
    attempts: pd.DataFrame  # with dataset_path pointing at the store found (or the recorded one)
    moved: int = 0  # datasets found somewhere other than the recorded path
    rebuilt: list[str] = field(default_factory=list)  # stores rebuilt into datasets_dir
    missing: list[str] = field(default_factory=list)  # recorded paths neither found nor rebuilt

    def notes(self) -> list[str]:
        """Lines for the user: what was rebuilt, what could not be checked."""
        lines = []
        if self.rebuilt:
            lines.append(f"rebuilt {len(self.rebuilt)} missing dataset(s) from the run's configuration "
                         f"(content-hashed: the same data): {', '.join(self.rebuilt)}")
        if self.missing:
            lines.append(f"{len(self.missing)} dataset(s) not found and not rebuildable, so not checked: pass "
                         "--datasets-dir where the run's datasets are")
        return lines


def _dataset_id(store: Path) -> str | None:
    try:
        return json.loads((store / "meta.json").read_text(encoding="utf-8")).get("dataset_id")
    except (OSError, ValueError, AttributeError):
        return None


def _candidates(recorded: str, run_dir: Path, datasets_dir: Path | None) -> list[Path]:
    path = Path(recorded)
    tail = Path(*path.parts[-3:]) if len(path.parts) >= 3 else path
    found = [datasets_dir / tail] if datasets_dir is not None else []
    found.append(path)
    if not path.is_absolute():  # relative to the run's working directory: results/ usually sits in it
        found += [run_dir.parent.parent / path, run_dir.parent / path]
    return found


def locate_datasets(attempts: pd.DataFrame, run_dir: Path, datasets_dir: Path | None = None,
                    rebuild: bool = True) -> Located:
    """The attempts with each dataset_path pointing at a readable store of the same dataset (module doc)."""
    if attempts.empty or "dataset_path" not in attempts or "dataset_id" not in attempts:
        return Located(attempts)
    result = Located(attempts.copy())
    mapping: dict[str, str] = {}
    specs = None
    pairs = attempts[["dataset_path", "dataset_id"]].dropna().drop_duplicates()
    for recorded, dataset_id in pairs.itertuples(index=False):
        store = next((c for c in _candidates(recorded, run_dir, datasets_dir) if _dataset_id(c) == dataset_id), None)
        if store is None and rebuild and datasets_dir is not None:
            if specs is None:
                specs = _specs_of(run_dir)
            spec = specs.get(dataset_id)
            if spec is not None:
                store = _rebuild(spec, datasets_dir, dataset_id)
                if store is not None:
                    result.rebuilt.append(str(store))
        if store is None:
            result.missing.append(recorded)
            continue
        if str(store) != recorded:
            mapping[recorded] = str(store)
            result.moved += 1
    if mapping:
        result.attempts["dataset_path"] = result.attempts["dataset_path"].map(lambda p: mapping.get(p, p))
    return result


def _specs_of(run_dir: Path) -> dict:
    """dataset_id -> DatasetSpec of every cell of the run's configuration (empty when it cannot be read)."""
    from llm_erm.config import GridConfig
    from llm_erm.results import ledger

    try:
        config = GridConfig.from_options(**(ledger.read_manifest(run_dir) or {}).get("config", {}))
        return {spec.dataset_id: spec for spec in config.dataset_specs()}
    except Exception:  # noqa: BLE001 - a config this install cannot rebuild from: nothing to rebuild
        return {}


def _rebuild(spec, datasets_dir: Path, dataset_id: str) -> Path | None:
    from llm_erm.datasets import build_dataset

    try:
        dataset = build_dataset(spec, datasets_dir)
    except Exception:  # noqa: BLE001 - unbuildable (a file target whose file is gone): not checked
        return None
    return dataset.path if dataset.dataset_id == dataset_id else None

"""Length generalisation: score a run's selected erm programs on fresh test sets at other lengths.

The paper's v2 claim is that a program found at one length keeps working at others. How a target extends to
another length L' (documented in llm_erm/datasets/README.md):

- most targets are one rule for every length (parity, the patterns, palindrome, Dyck-2, the primes, rule-30
  parity, SHA-256 parity, the graph cycle rank): the test set at L' is the store's own dataset at L';
- parity_rand (fn_e, fn_f) and poly_f2_deg3 draw their positions (monomials) per length, so "the same rule"
  at L' means the *source* length's positions: inputs are the store's uniform strings at L', relabelled by
  the source rule and balanced again; at an L' shorter than a source position the rule is undefined and the
  row says so instead of a score;
- tabular targets have one length only: they are left out.

Programs run in the real sandbox, exactly as in the grid. Nothing here spends money.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.errors import UsageError
from llm_erm.results import ledger, storage

GENERALIZATION_FILE = "generalization.parquet"
COLUMNS = ["method_label", "target", "source_length", "trial", "length", "test_acc", "test_n", "status",
           "limit_split", "note", "code_sha256"]


@dataclass(frozen=True)
class Labelled:
    inputs: list[str]
    labels: list[int]


def source_rule(target_id: str, source_length: int) -> Callable[[str], int] | None:
    """The source length's rule as a function of any longer string, for targets whose rule is drawn per
    length (None for the others: their own definition at the new length is the same rule)."""
    from llm_erm.datasets.targets import parity_rand_positions, poly_monomials

    if target_id in ("fn_e", "fn_f"):
        positions = parity_rand_positions(source_length)[: 3 if target_id == "fn_e" else 10]
        return lambda x: sum(x[p] == "1" for p in positions) & 1
    if target_id == "poly_f2_deg3":
        monomials = poly_monomials(source_length)
        return lambda x: sum(all(x[i] == "1" for i in term) for term in monomials) & 1
    return None


def needed_length(target_id: str, source_length: int) -> int:
    """The shortest length the source rule is defined at (1 for rules defined at every length)."""
    from llm_erm.datasets.targets import parity_rand_positions, poly_monomials

    if target_id in ("fn_e", "fn_f"):
        return max(parity_rand_positions(source_length)[: 3 if target_id == "fn_e" else 10]) + 1
    if target_id == "poly_f2_deg3":
        return max(i for term in poly_monomials(source_length) for i in term) + 1
    return 1


def fresh_test_set(spec: DatasetSpec, source_length: int, length: int, test_size: int, datasets_dir: Path,
             exclude: set[str] = frozenset()) -> Labelled:
    """Fresh balanced test inputs at `length` labelled by the target's rule as it extends (module doc), none
    of them in `exclude` (at the source length: the examples the program was shown or selected on)."""
    at = replace(spec, length=length, train_size=2, val_size=2, test_size=test_size)
    at.validate()
    split = build_dataset(at, datasets_dir).split("test")
    rule = source_rule(spec.target_obj.id, source_length) or (lambda x, labels=dict(zip(split.inputs, split.labels,
                                                                                        strict=True)): labels[x])
    relabelled = [(x, rule(x)) for x in split.inputs if x not in exclude]
    half = min(sum(y for _, y in relabelled), sum(1 - y for _, y in relabelled))  # balanced again
    taken, kept = {0: 0, 1: 0}, []
    for x, y in relabelled:
        if taken[y] < half:
            taken[y] += 1
            kept.append((x, y))
    return Labelled([x for x, _ in kept], [y for _, y in kept])


def generalize_run(run_dir: Path, lengths: Sequence[int], *, datasets_dir: Path, test_size: int = 2000,
                   sandbox_mode: str = "bwrap", time_per_input_s: float = 0.01, memory_mb: int = 1024) -> pd.DataFrame:
    """Every selected erm program of the run, scored at every length; written as generalization.parquet/csv."""
    import hashlib

    from llm_erm.analysis.stats import select_attempts
    from llm_erm.verify import Sandbox
    from llm_erm.verify.score import accuracy

    attempts = ledger.read_attempts(run_dir).to_pandas()
    if attempts.empty:
        raise UsageError(f"no attempts under {run_dir}: pass a run that has finished trials")
    chosen = select_attempts(attempts)
    chosen = chosen[chosen["selected"] & (chosen["method"] == "erm") & chosen["code"].notna()]
    if chosen.empty:
        raise UsageError(f"run {run_dir.name} has no selected erm program to generalise")
    rows = []
    with Sandbox(workers=1, time_per_input_s=time_per_input_s, memory_mb=memory_mb, mode=sandbox_mode) as sandbox:
        for record in chosen.to_dict("records"):
            spec = _spec_of(record)
            if spec.target_obj.alphabet == "tabular":
                continue
            base = {"method_label": record["method_label"], "target": record["target"],
                    "source_length": int(record["length"]), "trial": int(record["trial"]),
                    "code_sha256": hashlib.sha256(record["code"].encode()).hexdigest()[:16]}
            for length in lengths:
                needs = needed_length(record["target"], int(record["length"]))
                try:
                    if length < needs:
                        raise UsageError(f"the source rule reads position {needs - 1}: undefined at L={length}")
                    data = fresh_test_set(spec, int(record["length"]), length, test_size, datasets_dir,
                                    exclude=_seen(record) if length == int(record["length"]) else set())
                except UsageError as exc:
                    rows.append({**base, "length": length, "test_acc": None, "test_n": 0, "status": "undefined",
                                 "limit_split": None, "note": str(exc)})
                    continue
                run = sandbox.run(record["code"], data.inputs)
                rows.append({**base, "length": length, "test_acc": accuracy(run.outcomes[0], data.labels),
                             "test_n": len(data.labels), "status": run.status,
                             "limit_split": "test" if run.status in ("timeout", "memory") else None,
                             "note": run.first_error})
    table = pd.DataFrame(rows, columns=COLUMNS)
    ledger.write_frame(run_dir / GENERALIZATION_FILE, table)
    storage.write_bytes(run_dir / GENERALIZATION_FILE.replace(".parquet", ".csv"), table.to_csv(index=False).encode())
    return table


def _spec_of(record: dict) -> DatasetSpec:
    """The source cell's spec, from the dataset the run used (its seed; a user target's alphabet)."""
    import json

    from llm_erm.datasets.targets import is_user_target

    meta = json.loads((Path(record["dataset_path"]) / "meta.json").read_text())
    return DatasetSpec(record["target"], int(record["length"]), seed=int(meta["base_seed"]),
                       alphabet=meta["alphabet"] if is_user_target(record["target"]) else None)


def _seen(record: dict) -> set[str]:
    """The inputs the program was shown or selected on: never part of its generalisation test."""
    from llm_erm.datasets.store import SEPARATOR

    seen = set()
    for split in ("train", "val"):
        text = (Path(record["dataset_path"]) / f"{split}.txt").read_text(encoding="utf-8")
        seen |= {line.rpartition(SEPARATOR)[0] for line in text.splitlines()}
    return seen

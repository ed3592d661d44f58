"""Length generalisation: score a run's selected erm programs, and its trained baselines, on fresh test sets at
other lengths.

A trained baseline (xgboost ..., sgd, finetune) keeps no model, so it is trained again on the trial's own data
with the trial's settings and seed (deterministic, so the same model) and scored at each length. A classical
learner is a fixed-width map: inputs of another length are cut or padded to the source length's columns (the
note says so); the transformers read any length.

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
from typing import Any

import pandas as pd

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.datasets.custom import FILE_PREFIX
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
                   sandbox_mode: str | None = None, time_per_input_s: float | None = None,
                   memory_mb: int | None = None, sandbox: Any = None) -> pd.DataFrame:
    """Every selected erm program of the run, scored at every length; merged into generalization.parquet/csv
    (a length scored again replaces its old rows; the other lengths' rows stay).

    The sandbox's bounds are the run's own (its manifest's config) unless given; `sandbox`, an open
    llm_erm.verify.Sandbox (the grid's), is used instead of opening a second pool of workers."""
    import contextlib
    import hashlib

    from llm_erm.analysis.locate import locate_datasets
    from llm_erm.analysis.stats import select_attempts
    from llm_erm.config import GridConfig
    from llm_erm.verify import Sandbox
    from llm_erm.verify.score import accuracy

    bad = [n for n in lengths if isinstance(n, bool) or not isinstance(n, int) or n < 1]
    if bad or not lengths:
        raise UsageError(f"--lengths must be positive integers, got {' '.join(map(str, lengths)) or 'none'}")
    lengths = list(dict.fromkeys(lengths))
    attempts = ledger.read_attempts(run_dir).to_pandas()
    if attempts.empty:
        raise UsageError(f"no attempts under {run_dir}: pass a run that has finished trials")
    attempts = locate_datasets(attempts, run_dir, Path(datasets_dir)).attempts  # a moved run finds its datasets
    selected = select_attempts(attempts)
    chosen = selected[selected["selected"] & (selected["method"] == "erm") & selected["code"].notna()]
    trained = selected[selected["selected"] & selected["method"].isin(_learners()[0]) & (selected["status"] == "ok")]
    if chosen.empty and trained.empty:
        raise UsageError(f"run {run_dir.name} has no selected erm program or trained baseline to generalise")
    rows = _trained_rows(trained, lengths, datasets_dir, test_size)
    if sandbox is None:
        run = GridConfig.recorded(run_dir)
        opened = Sandbox(workers=1, mode=run.sandbox if sandbox_mode is None else sandbox_mode,
                         time_per_input_s=run.candidate_timeout_s if time_per_input_s is None else time_per_input_s,
                         memory_mb=run.candidate_memory_mb if memory_mb is None else memory_mb)
    else:
        opened = contextlib.nullcontext(sandbox)
    with opened as sandbox:
        for record in chosen.to_dict("records"):
            if record["target"].startswith(FILE_PREFIX):  # a labelled file has its one length only
                continue
            base = {"method_label": record["method_label"], "target": record["target"],
                    "source_length": int(record["length"]), "trial": int(record["trial"]),
                    "code_sha256": hashlib.sha256(record["code"].encode()).hexdigest()[:16]}
            try:
                spec = _spec_of(record)
            except (OSError, ValueError, KeyError) as exc:  # its dataset neither found nor rebuildable
                rows += [{**base, "length": length, "test_acc": None, "test_n": 0, "status": "not_checked",
                          "limit_split": None, "note": f"source dataset unreadable ({exc}): pass --datasets-dir"}
                         for length in lengths]
                continue
            if spec.target_obj.alphabet == "tabular":
                continue
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
    table = _merged(run_dir / GENERALIZATION_FILE, pd.DataFrame(rows, columns=COLUMNS))
    ledger.write_frame(run_dir / GENERALIZATION_FILE, table)
    storage.write_bytes(run_dir / GENERALIZATION_FILE.replace(".parquet", ".csv"), table.to_csv(index=False).encode())
    return table


KEY = ["method_label", "target", "source_length", "trial", "length"]


def _merged(path: Path, new: pd.DataFrame) -> pd.DataFrame:
    """The file's rows for the lengths not scored now, then the new rows (an earlier call's lengths stay)."""
    if not path.exists():
        return new
    old = pd.read_parquet(path)
    if not set(COLUMNS) <= set(old.columns):
        return new
    kept = old[~old["length"].isin(new["length"].unique())][COLUMNS]
    merged = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    return merged.sort_values(KEY, kind="stable").reset_index(drop=True)


def _learners() -> tuple[list[str], list[str]]:
    """Every trained learner, and those of fixed input width (the classical ones: inputs cut or padded)."""
    from llm_erm.methods import LEARNERS

    return list(LEARNERS), [name for name, learner in LEARNERS.items() if learner.extra == "baselines"]


def _trained_rows(trained: pd.DataFrame, lengths: Sequence[int], datasets_dir: Path, test_size: int) -> list[dict]:
    """Each selected trained-baseline trial, trained again as it was (its data, settings, seed), scored at every
    length on the same fresh test sets as erm's programs."""
    import json

    from llm_erm.datasets import open_dataset
    from llm_erm.engine.calls import attempt_seed
    from llm_erm.methods import LabelledData, cell_data, run_learner

    rows = []
    for record in trained.to_dict("records"):
        meta = json.loads((Path(record["dataset_path"]) / "meta.json").read_text())
        spec = replace(_spec_of(record), train_size=meta["sizes"]["train"], val_size=meta["sizes"]["val"],
                       test_size=meta["sizes"]["test"])
        if spec.target_obj.alphabet == "tabular":
            continue
        dataset = open_dataset(spec, Path(record["dataset_path"]).parents[2])
        settings = json.loads(record["method_extra"]).get("settings") if record.get("method_extra") else None
        source = int(record["length"])
        base = {"method_label": record["method_label"], "target": record["target"], "source_length": source,
                "trial": int(record["trial"]), "code_sha256": None}
        if dataset is None or settings is None:
            rows += [{**base, "length": n, "test_acc": None, "test_n": 0, "status": "undefined", "limit_split": None,
                      "note": "the trial's dataset or settings are gone: cannot train it again"} for n in lengths]
            continue
        train, _ = cell_data(dataset)
        seen = {x for x in train.inputs}
        seed = attempt_seed(str(record["run_id"]), dataset.dataset_id, int(record["trial"]), 0)
        for length in lengths:
            needs = needed_length(record["target"], source)
            try:
                if length < needs:
                    raise UsageError(f"the source rule reads position {needs - 1}: undefined at L={length}")
                data = fresh_test_set(spec, source, length, test_size, datasets_dir,
                                      exclude=seen if length == source else set())
            except UsageError as exc:
                rows.append({**base, "length": length, "test_acc": None, "test_n": 0, "status": "undefined",
                             "limit_split": None, "note": str(exc)})
                continue
            result = run_learner(record["method"], train, LabelledData(data.inputs, data.labels),
                                 alphabet=dataset.target.alphabet, length=source, seed=seed, settings=settings)
            note = (f"trained again (seed {seed}); inputs cut or padded to L={source}"
                    if record["method"] in _learners()[1] and length != source else f"trained again (seed {seed})")
            rows.append({**base, "length": length, "test_acc": result.test_acc, "test_n": len(data.labels),
                         "status": "ok", "limit_split": None, "note": note})
    return rows


def _spec_of(record: dict) -> DatasetSpec:
    """The source cell's spec, from the dataset the run used (its seed; a user target's alphabet)."""
    import json

    from llm_erm.datasets.targets import is_user_target

    meta = json.loads((Path(record["dataset_path"]) / "meta.json").read_text())
    return DatasetSpec(record["target"], int(record["length"]), seed=int(meta["base_seed"]),
                       alphabet=meta["alphabet"] if is_user_target(record["target"]) else None,
                       variant=meta.get("variant"),  # the source's sampling variant carries to every length
                       duplicates=bool(meta.get("duplicates")))


def _seen(record: dict) -> set[str]:
    """The inputs the program was shown or selected on: never part of its generalisation test."""
    from llm_erm.datasets.store import SEPARATOR

    seen = set()
    for split in ("train", "val"):
        text = (Path(record["dataset_path"]) / f"{split}.txt").read_text(encoding="utf-8")
        seen |= {line.rpartition(SEPARATOR)[0] for line in text.splitlines()}
    return seen

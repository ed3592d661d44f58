"""Hand-built ledgers and dataset stores for the analysis tests (no datasets package needed)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from llm_erm.results import ledger


def write_store(path: Path, train: list[str], val: list[str], test: list[str]) -> Path:
    """A dataset store of `<input> -> <label>` lines (label = parity of the bits)."""
    path.mkdir(parents=True, exist_ok=True)
    for name, inputs in (("train", train), ("val", val), ("test", test)):
        lines = "".join(f"{x} -> {x.count('1') % 2}\n" for x in inputs)
        (path / f"{name}.txt").write_text(lines, encoding="utf-8")
    (path / "meta.json").write_text("{}\n", encoding="utf-8")
    return path


def random_inputs(n: int, length: int, rng: random.Random, avoid: set[str] = frozenset()) -> list[str]:
    """n distinct random bit strings of `length` characters, none in `avoid`."""
    seen = set(avoid)
    out = []
    while len(out) < n:
        x = "".join(rng.choice("01") for _ in range(length))
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def clean_store(path: Path, length: int = 20, sizes=(10, 10, 40), seed: int = 0) -> tuple[Path, dict]:
    """A leak-free store; returns its path and its inputs per split."""
    rng = random.Random(seed)
    inputs = random_inputs(sum(sizes), length, rng)
    splits = {
        "train": inputs[: sizes[0]],
        "val": inputs[sizes[0] : sizes[0] + sizes[1]],
        "test": inputs[sizes[0] + sizes[1] :],
    }
    return write_store(path, **splits), splits


def attempt_row(target: str, length: int, trial: int, attempt: int, val, test, status: str = "ok",
                **extra: Any) -> dict[str, Any]:
    """One ledger row with sensible defaults; `extra` overrides any column."""
    row = {
        "run_id": "run",
        "target": target,
        "target_name": f"name_{target}",
        "length": length,
        "trial": trial,
        "attempt": attempt,
        "dataset_id": f"ds-{target}-{length}",
        "proposer": "replay",
        "model": "gpt-5",
        "status": status,
        "val_acc": val,
        "test_acc": test,
        "code": "def f(x):\n    return x.count('1') % 2\n" if status == "ok" else None,
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "reasoning_tokens": 20,
        "cached_tokens": 10,
        "cost_usd": 0.01,
        "sandbox": "bwrap",
    }
    row.update(extra)
    return row


def write_trials(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows to the ledger, one file per (target, length, trial), with `selected` and `stopped_early`
    set the way the grid sets them."""
    trials: dict[tuple, list[dict]] = {}
    for row in rows:
        trials.setdefault((row["target"], row["length"], row["trial"]), []).append(dict(row))
    for (target, length, trial), group in trials.items():
        scored = [r for r in group if r.get("val_acc") is not None]
        best = max(scored, key=lambda r: (r["val_acc"], -r["attempt"])) if scored else None
        for r in group:
            r.setdefault("selected", r is best)
            r.setdefault("stopped_early", r.get("val_acc") == 1.0 and r is group[-1])
        ledger.write_trial(run_dir, group[0].get("method_label") or "erm", target, length, trial, group)


def synthetic_run(run_dir: Path, datasets_dir: Path, *, targets=("fn_a", "fn_b"), lengths=(20, 24),
                  trials: int = 3, attempts: int = 3, seed: int = 1, test_shift: float = 0.0) -> Path:
    """A small complete run over clean stores: accuracies drawn from `seed`, test lowered by `test_shift`."""
    rng = random.Random(seed)
    rows = []
    for t_index, target in enumerate(targets):
        for length in lengths:
            store, _ = clean_store(datasets_dir / target / f"L{length}", length=length, seed=t_index * 100 + length)
            for trial in range(1, trials + 1):
                for attempt in range(1, attempts + 1):
                    status = rng.choice(["ok", "ok", "ok", "syntax_error", "runtime_errors"])
                    val = round(rng.uniform(0.5, 1.0), 2) if status != "syntax_error" else None
                    test = None if val is None else max(0.0, round(val - rng.uniform(0, 0.1) - test_shift, 3))
                    rows.append(attempt_row(target, length, trial, attempt, val, test, status,
                                            dataset_path=str(store)))
                    if val == 1.0:
                        break  # the grid stops a trial at validation 1.0
    write_trials(run_dir, rows)
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {"run_id": run_dir.name, "sandbox": "bwrap",
                                                       "config": {"attempts": attempts, "trials": trials}})
    return run_dir

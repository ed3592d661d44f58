"""Analysis wall time on a full default grid ledger (issue 6 target: under 20 s).

Synthesises, in a temp dir, the default grid: 12 targets x 5 lengths = 60 cells x 5 trials x 5 attempts
= 1 500 attempt rows, and 60 dataset stores of 100/100/10 000 lines. Then times
- baseline: reading the ledger into pandas and every split file of every store (the I/O any analysis pays);
- analyze_run: leakage checks, statistics, tables, plots, HTML report;
and prints both with their ratio.

    .venv/bin/python benchmarks/bench_analysis.py [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from llm_erm.analysis import analyze_run
from llm_erm.analysis.leakage import SPLITS, read_split
from llm_erm.results import ledger

TARGETS = [f"fn_{c}" for c in "abcdefghijkl"]
DECIMAL = {"fn_i", "fn_k"}
LENGTHS = (100, 50, 30, 25, 20)
DYCK_LENGTHS = (100, 80, 60, 40, 20)
SIZES = {"train": 100, "val": 100, "test": 10_000}
TRIALS = ATTEMPTS = 5
STATUSES = ["ok"] * 7 + ["syntax_error", "runtime_errors", "timeout", "no_code"]


def _store(path: Path, length: int, alphabet: str, rng: random.Random) -> dict[str, list[str]]:
    path.mkdir(parents=True, exist_ok=True)
    needed = sum(SIZES.values())
    pool: set[str] = set()
    while len(pool) < needed:
        pool.add("".join(rng.choices(alphabet, k=length)))
    inputs = list(pool)
    rng.shuffle(inputs)
    splits, start = {}, 0
    for name in SPLITS:
        splits[name] = inputs[start : start + SIZES[name]]
        start += SIZES[name]
        lines = "".join(f"{x} -> {rng.randint(0, 1)}\n" for x in splits[name])
        (path / f"{name}.txt").write_text(lines, encoding="utf-8")
    (path / "meta.json").write_text("{}\n", encoding="utf-8")
    return splits


def synthesise_grid(root: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    run_dir = root / "results" / "bench"
    for target in TARGETS:
        alphabet = "0123456789" if target in DECIMAL else "01"
        for length in DYCK_LENGTHS if target == "fn_h" else LENGTHS:
            store = root / "datasets" / target / f"L{length}" / "seed1"
            splits = _store(store, length, alphabet, rng)
            for trial in range(1, TRIALS + 1):
                rows = []
                for attempt in range(1, ATTEMPTS + 1):
                    status = rng.choice(STATUSES)
                    scored = status in ("ok", "runtime_errors")
                    val = round(rng.uniform(0.45, 1.0), 2) if scored else None
                    code = f"def f(x):\n    return int(x.count('1') % 2 == {attempt % 2})\n"
                    if rng.random() < 0.05:  # a memorising candidate: a lookup of training inputs
                        code += f"TABLE = {{{splits['train'][0]!r}: 1, {splits['train'][1]!r}: 0}}\n"
                    rows.append(
                        {
                            "run_id": "bench", "target": target, "target_name": target, "length": length,
                            "trial": trial, "attempt": attempt, "dataset_id": f"{target}-{length}",
                            "dataset_path": str(store), "proposer": "openai-responses", "model": "gpt-5",
                            "status": status, "val_acc": val,
                            "test_acc": None if val is None else max(0.0, val - rng.uniform(0, 0.05)),
                            "code": None if status == "no_code" else code,
                            "prompt_tokens": 3_000, "completion_tokens": 4_000, "reasoning_tokens": 3_000,
                            "cached_tokens": 1_000, "cost_usd": 0.045, "sandbox": "bwrap",
                        }
                    )
                    if val == 1.0:
                        rows[-1]["stopped_early"] = True
                        break
                ledger.write_trial(run_dir, "erm", target, length, trial, rows)
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {"run_id": "bench", "sandbox": "bwrap", "config": {}})
    return run_dir


def read_everything(run_dir: Path) -> int:
    """The baseline: the ledger into pandas plus every split of every store it names."""
    attempts = ledger.read_attempts(run_dir).to_pandas()
    lines = 0
    for path in attempts["dataset_path"].dropna().unique():
        for name in SPLITS:
            lines += len(read_split(Path(path) / f"{name}.txt"))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        run_dir = synthesise_grid(Path(tmp))
        synth_s = time.perf_counter() - started
        rows = len(ledger.read_attempts(run_dir))
        baseline, analysis = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            lines = read_everything(run_dir)
            baseline.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = analyze_run(run_dir)
            analysis.append(time.perf_counter() - t0)
        base_s, analysis_s = statistics.median(baseline), statistics.median(analysis)
        print(f"grid: {len(result.cells)} cells, {rows} attempt rows, {lines:,} dataset lines "
              f"(synthesised in {synth_s:.1f} s); median of {args.repeat} runs")
        print(f"leakage: ok={result.ok}, {len(result.leakage.findings)} findings "
              f"({result.leakage.candidates_checked} candidates scanned)")
        print()
        print(f"{'measure':<44}{'seconds':>10}")
        print(f"{'baseline: read ledger + all dataset splits':<44}{base_s:>10.2f}")
        print(f"{'analyze_run (target < 20 s)':<44}{analysis_s:>10.2f}")
        print(f"{'ratio analyze_run / baseline':<44}{analysis_s / base_s:>10.1f}")
        print(f"{'within target':<44}{'yes' if analysis_s < 20 else 'NO':>10}")


if __name__ == "__main__":
    main()

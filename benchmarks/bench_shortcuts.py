"""Best shortcut accuracy per target and sampling variant (the table in llm_erm/datasets/README.md).

For each (target, L, variant) it builds the data as a run would (100/100/2000 here: 2 200 rows, seed 42) and
scores every applicable shortcut of llm_erm.datasets.shortcuts (last digit, count of ones and its residues,
the number mod 3 and mod 7, distinct vertex count, ...): the accuracy of the best rule reading only that
feature (majority label per value, on the same rows: slightly optimistic for many-valued features such as
the count of ones). Features that compute the target itself (fn_a's count of ones) are left out.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_shortcuts.py [--out shortcuts.json]
"""

from __future__ import annotations

import argparse
import json
import time

from llm_erm.datasets import DatasetSpec
from llm_erm.datasets.shortcuts import shortcut_table
from llm_erm.datasets.store import generate

# (target, length, variant); the paper's length 100, plus where a variant or a length changes the sampling.
CASES = [
    *((t, 100, None) for t in ("fn_a", "fn_b", "fn_c", "fn_d", "fn_e", "fn_f")),
    ("fn_g", 100, None), ("fn_g", 20, None), ("fn_g", 100, "near-miss"), ("fn_g", 101, "near-miss"),
    ("fn_g", 100, "mixed"),
    *((t, 100, None) for t in ("fn_h", "fn_i", "fn_j", "fn_k", "fn_l", "fn_v", "fn_aa")),
    ("fn_aa", 30, None), ("fn_aa", 100, "upstream"), ("fn_aa", 50, "upstream"),
    *((t, 100, None) for t in ("two_primes", "prime_minus_5", "gcd_range", "poly_f2_deg3")),
]
DEFINING = {"fn_a": {"ones", "ones_mod_2"}}  # features that are the target itself


def measure(target: str, length: int, variant: str | None) -> dict:
    spec = DatasetSpec(target, length, 100, 100, 2000, variant=variant)
    files, _ = generate(spec)
    pairs = [line.rpartition(" -> ") for s in ("train", "val", "test") for line in files[s].decode().splitlines()]
    inputs, labels = [x for x, _, _ in pairs], [int(y) for _, _, y in pairs]
    table = {k: v for k, v in shortcut_table(spec.target_obj.alphabet, inputs, labels).items()
             if k not in DEFINING.get(target, set())}
    best = max(table, key=table.__getitem__)
    return {"target": target, "length": length, "variant": variant or "default", "best": best,
            "best_acc": table[best], "all": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    results = []
    print("| target | L | variant | best shortcut | accuracy | time (s) |\n|---|---|---|---|---|---|")
    for target, length, variant in CASES:
        t0 = time.perf_counter()
        r = measure(target, length, variant)
        results.append(r)
        print(f"| {target} | {length} | {r['variant']} | {r['best']} | {r['best_acc']:.2f} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()

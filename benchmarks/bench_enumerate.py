"""What the enumerative baseline costs: programs enumerated and seconds to a solution, per target and length.

    .venv/bin/python benchmarks/bench_enumerate.py [--lengths 20,30,50] [--targets fn_a,fn_b,...]

For each cell it builds the dataset (100 train / 100 val / 1000 test, seed 42) in a temporary
directory, renders the default prompt, asks the `enumerate` proposer (default budget) for its best
program and scores it with the real sandboxed verifier. "solved" means validation accuracy 1.0.

Then it shows why the baseline fails on long targets: the programs needed to learn the XOR of k
fixed bits (the first k positions of fn_f at L=20) grow by orders of magnitude with each bit, so
10-parity (fn_f) is out of reach of any budget. The baseline of that ratio is fn_e (k = 3),
measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from llm_erm.datasets import SEED_TARGETS, DatasetSpec, build_dataset, get_target, parity_rand_positions
from llm_erm.errors import UsageError
from llm_erm.proposers.base import ProposeRequest
from llm_erm.proposers.dsl import enumerate_programs
from llm_erm.proposers.enumerate import EnumerateProposer
from llm_erm.proposers.prompt import build_prompt
from llm_erm.verify import Sandbox, verify_candidate

GROWTH_BUDGET = 5_000_000  # programs; k = 4 needs about 3.4M (10 s, 650 MB peak)


def bench_cell(target: str, length: int, datasets_dir: Path, sandbox: Sandbox) -> dict:
    dataset = build_dataset(DatasetSpec(target, length, 100, 100, 1000), datasets_dir)
    proposer = EnumerateProposer()
    proposal = proposer.propose(ProposeRequest(build_prompt(dataset), trial=1, attempt=1))
    result = verify_candidate(proposal.text, dataset, sandbox)
    code = json.loads(proposal.text)["code"]
    return {
        "target": target,
        "name": dataset.target.name,
        "L": length,
        "programs": proposal.extra["programs_enumerated"],
        "seconds": proposal.extra["seconds"],
        "exhausted": proposal.extra["budget_exhausted"],
        "size": proposal.extra["size"],
        "train": proposal.extra["train_acc"],
        "val": result.val_acc,
        "test": result.test_acc,
        "program": code.rstrip().splitlines()[-1].strip().removeprefix("return "),
    }


def k_parity_sample(k: int, length: int, size: int, rng: random.Random) -> tuple[list[str], list[int]]:
    """A balanced sample labelled by the XOR of the first k of fn_f's positions."""
    positions = parity_rand_positions(length)[:k]
    inputs: list[str] = []
    labels: list[int] = []
    while len(inputs) < size:
        x = "".join(rng.choice("01") for _ in range(length))
        y = sum(int(x[i]) for i in positions) % 2
        if labels.count(y) < size // 2:
            inputs.append(x)
            labels.append(y)
    return inputs, labels


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="20,30,50")
    parser.add_argument("--targets", default=",".join(SEED_TARGETS))
    parser.add_argument("--max-k", type=int, default=4, help="largest parity order in the growth table")
    args = parser.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    targets = args.targets.split(",")

    print(f"enumerate proposer, default budget {EnumerateProposer().identity()}\n")
    print(
        "| target | name | L | programs | seconds | solved (val 1.0) | train | val | test | size | best program |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Sandbox() as sandbox:
        for target in targets:
            for length in lengths:
                try:
                    DatasetSpec(target, length, 100, 100, 1000).validate()
                except UsageError as exc:  # an impossible cell (dyck2 needs L % 4 == 0): say so, go on
                    print(
                        f"| {target} | {get_target(target).name} | {length} | | | skipped: {exc} | | | | | |"
                    )
                    continue
                row = bench_cell(target, length, Path(tmp), sandbox)
                rows.append(row)
                programs = f"{row['programs']:,}" + (" (budget)" if row["exhausted"] else "")
                solved = "yes" if row["val"] == 1.0 else "no"
                print(
                    f"| {target} | {row['name']} | {length} | {programs} | {fmt(row['seconds'])} | {solved} | "
                    f"{fmt(row['train'])} | {fmt(row['val'])} | {fmt(row['test'])} | {row['size']} | "
                    f"`{row['program'][:70]}` |",
                    flush=True,
                )
    print(
        f"\n{len(rows)} cells in {time.perf_counter() - started:.0f} s; "
        f"solved {sum(r['val'] == 1.0 for r in rows)}/{len(rows)}"
    )

    by_cell = {(r["target"], r["L"]): r for r in rows}
    if any(t == "fn_e" for t, _ in by_cell) and any(t == "fn_f" for t, _ in by_cell):
        print("\n### 10-parity (fn_f) vs 3-parity (fn_e), default budget\n")
        print("| L | fn_e programs | fn_f programs | fn_f / fn_e |")
        print("|---|---|---|---|")
        for length in lengths:
            e, f = by_cell.get(("fn_e", length)), by_cell.get(("fn_f", length))
            if e and f:
                bound = ">= " if f["exhausted"] and not e["exhausted"] else ("?" if e["exhausted"] else "")
                ratio = (
                    "both hit the budget"
                    if e["exhausted"]
                    else f"{bound}{f['programs'] / e['programs']:.1f}x"
                )
                print(
                    f"| {length} | {e['programs']:,}{' (budget)' * e['exhausted']} | "
                    f"{f['programs']:,}{' (budget)' * f['exhausted']} | {ratio} |"
                )

    print(f"\n### Programs to learn the XOR of k bits (L=20, positions of fn_f, budget {GROWTH_BUDGET:,})\n")
    print("| k | programs | distinct | seconds | found | program size | x previous k |")
    print("|---|---|---|---|---|---|---|")
    previous = None
    rng = random.Random(20)
    for k in range(1, args.max_k + 1):
        inputs, labels = k_parity_sample(k, 20, 100, rng)
        found = enumerate_programs(inputs, labels, max_programs=GROWTH_BUDGET, max_seconds=120)
        growth = (
            f"{'>= ' * found.budget_exhausted}{found.programs_enumerated / previous:.0f}x" if previous else ""
        )
        print(
            f"| {k} | {found.programs_enumerated:,}{' (budget)' * found.budget_exhausted} | "
            f"{found.distinct_programs:,} | {found.seconds:.2f} | {'yes' if found.solved else 'no'} | "
            f"{found.best[0].size if found.solved else '-'} | {growth} |",
            flush=True,
        )
        previous = found.programs_enumerated
        if found.budget_exhausted:
            break
    print("\nfn_f is k = 10: size 19, beyond any budget at this growth rate.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

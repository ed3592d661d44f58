"""The paper's baseline table on this machine, and tiny-SGD timings and sample-size sweeps.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_baselines.py classical [--datasets DIR]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_baselines.py sgd [--epochs 200] [--targets fn_a ...]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_baselines.py sweep [--target fn_a --length 50]
    PYTHONPATH=. .venv/bin/python benchmarks/bench_baselines.py paper-block

classical    every classical learner on fn_a..fn_l x their 5 default lengths (200 train+val samples, the
             10 000 test split, default settings): test accuracy per cell, mean per target, wall time per
             method for the whole grid; XGBoost on palindrome (fn_g) at L=100 against the paper's 83.6%,
             also on upstream's palindrome distribution (negatives = uniform non-palindromes only, built
             as a labelled file through the same store).
sgd          tiny SGD (2 layers, d=64, 1 torch thread, 200 epochs of batch 20 = upstream's recipe) on the same
             60 cells: train/test accuracy and seconds per run (training, evaluations, prediction).
sweep        train sizes 200 / 1k / 10k / 100k on one cell (fn_a, L=50): every classical learner, and tiny
             SGD with an epoch budget of min(200, 100 000 / n) epochs (2 000 steps at 200, 5 000 after).
paper-block  one block of the Qwen3-1.7B shape through the real training loop on the CPU (ms per step per
             block; the whole model is 28 blocks), the paper-size path short of its depth.

Every part prints the load average before and after, and a calibration: the seconds of a fixed
single-thread matmul workload at the start and the end, so a busy machine shows. Tables under 50 KB
are also written to benchmarks/results/baselines_<part>.csv.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from llm_erm.datasets import SEED_TARGETS, DatasetSpec, build_dataset, get_target
from llm_erm.methods import LabelledData, cell_data, check_learner, run_learner, sweep_specs

CLASSICAL = ("xgboost", "random-forest", "decision-tree", "svm", "logreg", "mlp")
RESULTS = Path(__file__).parent / "results"
PAPER_XGBOOST_PALINDROME = 0.836


def machine_note(label: str) -> str:
    load = os.getloadavg()
    return f"[{label}] load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"


def calibrate() -> float:
    """Seconds of a fixed single-thread pure-Python workload: ~0.3 s on an idle core here, more when
    other processes take the CPU (the machine is shared)."""
    start = time.perf_counter()
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return time.perf_counter() - start


def write_csv(part: str, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    text = buf.getvalue()
    if len(text.encode()) < 50_000:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"baselines_{part}.csv").write_text(text)
        print(f"table written to {RESULTS / f'baselines_{part}.csv'} ({len(text)} bytes)")
    else:
        print(f"table is {len(text)} bytes: not written (limit 50 KB)")


def grid_cells(targets: list[str]) -> list[tuple[str, int]]:
    return [(t, L) for t in targets for L in get_target(t).default_lengths]


def load_cell(datasets: Path, target: str, length: int, **sizes) -> tuple[LabelledData, LabelledData, str]:
    dataset = build_dataset(DatasetSpec(target, length, **sizes), datasets)
    train, test = cell_data(dataset)
    return train, test, dataset.target.alphabet


def print_matrix(rows: list[dict], methods: list[str], value: str = "test_acc") -> None:
    cells = sorted({(r["target"], r["length"]) for r in rows}, key=lambda c: (c[0], -c[1]))
    by = {(r["target"], r["length"], r["method"]): r[value] for r in rows}
    print(f"{'target':7s} {'L':>4s} " + " ".join(f"{m:>13s}" for m in methods))
    for target, length in cells:
        print(f"{target:7s} {length:4d} " + " ".join(
            f"{by[(target, length, m)]:13.3f}" if (target, length, m) in by else f"{'':>13s}" for m in methods))
    print(f"{'mean':7s} {'':4s} " + " ".join(
        f"{statistics.mean(r[value] for r in rows if r['method'] == m):13.3f}" for m in methods))


# ---------------------------------------------------------------- parts


def part_classical(args: argparse.Namespace) -> None:
    datasets = Path(args.datasets)
    for m in CLASSICAL:
        check_learner(m)
    rows, wall = [], defaultdict(float)
    t_build = time.perf_counter()
    cells = grid_cells(args.targets)
    data = {c: load_cell(datasets, *c) for c in cells}
    print(f"datasets: {len(cells)} cells ready in {time.perf_counter() - t_build:.1f} s")
    for (target, length), (train, test, alphabet) in data.items():
        for method in CLASSICAL:
            t0 = time.perf_counter()
            r = run_learner(method, train, test, alphabet=alphabet, length=length, seed=args.seed)
            wall[method] += time.perf_counter() - t0
            rows.append({"target": target, "length": length, "method": method, "n_train": r.n_train,
                         "n_test": r.n_test, "train_acc": round(r.train_acc, 4), "test_acc": round(r.test_acc, 4),
                         "train_s": round(r.train_seconds, 3), "predict_s": round(r.predict_seconds, 3)})
    print("\ntest accuracy (200 train+val samples, 10 000 test):")
    print_matrix(rows, list(CLASSICAL))
    print("\nmean train accuracy: " + ", ".join(
        f"{m} {statistics.mean(r['train_acc'] for r in rows if r['method'] == m):.3f}" for m in CLASSICAL))
    print("wall time for the whole grid per method (fit + predict + featurise): " + ", ".join(
        f"{m} {wall[m]:.1f} s" for m in CLASSICAL))
    xgb = next(r for r in rows if (r["target"], r["length"], r["method"]) == ("fn_g", 100, "xgboost"))
    print(f"\nXGBoost on palindrome (fn_g) L=100: {xgb['test_acc']:.3f} (paper: {PAPER_XGBOOST_PALINDROME:.3f}); "
          "our negatives are half near misses (one bit of the first half flipped), half uniform non-palindromes")
    upstream_palindrome(datasets, args.seed, rows)
    write_csv("classical", rows)


def upstream_palindrome(datasets: Path, seed: int, rows: list[dict]) -> None:
    """fn_g as upstream generated it at L=100: palindromes vs uniform non-palindromes only."""
    rng = random.Random(seed)
    length, n = 100, 10_200
    positives, negatives = set(), set()
    while len(positives) < n // 2:
        half = "".join(rng.choice("01") for _ in range(length // 2))
        positives.add(half + half[::-1])
    while len(negatives) < n // 2:
        x = "".join(rng.choice("01") for _ in range(length))
        if x != x[::-1]:
            negatives.add(x)
    path = Path(tempfile.mkdtemp()) / "palindrome_upstream_L100.csv"
    with path.open("w") as f:
        f.write("input,label\n")
        for x in sorted(positives):
            f.write(f"{x},1\n")
        for x in sorted(negatives):
            f.write(f"{x},0\n")
    train, test, alphabet = load_cell(datasets, str(path), length)
    for method in CLASSICAL:
        r = run_learner(method, train, test, alphabet="binary", length=length, seed=seed)
        rows.append({"target": "fn_g-upstream", "length": length, "method": method, "n_train": r.n_train,
                     "n_test": r.n_test, "train_acc": round(r.train_acc, 4), "test_acc": round(r.test_acc, 4),
                     "train_s": round(r.train_seconds, 3), "predict_s": round(r.predict_seconds, 3)})
        print(f"  {method:14s} on upstream's palindrome distribution (uniform negatives), L=100: "
              f"test {r.test_acc:.3f}")


def part_sgd(args: argparse.Namespace) -> None:
    datasets = Path(args.datasets)
    settings = {"epochs": args.epochs, "threads": 1, "eval_points": args.eval_points}
    check_learner("sgd", settings)
    rows = []
    cells = grid_cells(args.targets)
    if args.lengths:
        cells = [c for c in cells if c[1] in args.lengths]
    start = time.perf_counter()
    for i, (target, length) in enumerate(cells, 1):
        train, test, alphabet = load_cell(datasets, target, length)
        t0 = time.perf_counter()
        r = run_learner("sgd", train, test, alphabet=alphabet, length=length, seed=args.seed, settings=settings)
        wall = time.perf_counter() - t0
        steps = r.info["steps"]
        row = {"target": target, "length": length, "method": "sgd", "n_train": r.n_train, "n_test": r.n_test,
               "epochs": args.epochs, "train_acc": round(r.train_acc, 4), "test_acc": round(r.test_acc, 4),
               "train_s": round(r.train_seconds, 2), "eval_s": round(r.eval_seconds, 2),
               "predict_s": round(r.predict_seconds, 2), "wall_s": round(wall, 2),
               "ms_per_step": round(1000 * r.train_seconds / steps, 2),
               "curve_test": " ".join(f"{e['epoch']}:{e['test_acc']:.3f}" for e in r.curve if e["test_acc"] is not None),
               "curve_train": " ".join(f"{e['epoch']}:{e['train_acc']:.3f}" for e in r.curve if e["train_acc"] is not None)}
        rows.append(row)
        print(f"[{i}/{len(cells)}] {target} L={length}: train {r.train_acc:.3f} test {r.test_acc:.3f} "
              f"train {r.train_seconds:.1f} s ({row['ms_per_step']} ms/step) eval {r.eval_seconds:.1f} s "
              f"predict {r.predict_seconds:.1f} s wall {wall:.1f} s | {machine_note('now')}", flush=True)
    total = time.perf_counter() - start
    print("\ntiny SGD test accuracy (200 train+val, 10 000 test):")
    print_matrix(rows, ["sgd"])
    print_matrix(rows, ["sgd"], "train_acc")
    print(f"\nwall time for the whole sgd grid: {total:.0f} s ({len(cells)} runs)")
    for length in sorted({r["length"] for r in rows}):
        at = [r for r in rows if r["length"] == length]
        print(f"  L={length}: {statistics.mean(r['wall_s'] for r in at):.1f} s per run "
              f"(train {statistics.mean(r['train_s'] for r in at):.1f} s, "
              f"{statistics.mean(r['ms_per_step'] for r in at):.1f} ms/step), {len(at)} runs")
    write_csv(f"sgd{'' if args.epochs == 200 else f'_e{args.epochs}'}{args.tag}", rows)


def part_sweep(args: argparse.Namespace) -> None:
    datasets = Path(args.datasets)
    specs = sweep_specs(args.target, args.length, args.sizes)
    rows = []
    for spec in specs:
        dataset = build_dataset(spec, datasets)
        train, test = cell_data(dataset)
        n = len(train)
        methods = [m for m in args.methods if not (m == "svm" and n > args.svm_max)]
        for method in methods:
            settings: dict = {}
            if method == "sgd":
                settings = {"epochs": max(1, min(200, 100_000 // n)), "threads": 1}
            t0 = time.perf_counter()
            r = run_learner(method, train, test, alphabet=dataset.target.alphabet, length=args.length,
                            seed=args.seed, settings=settings)
            wall = time.perf_counter() - t0
            rows.append({"target": args.target, "length": args.length, "n_train": n, "method": method,
                         "epochs": settings.get("epochs", ""), "train_acc": round(r.train_acc, 4),
                         "test_acc": round(r.test_acc, 4), "train_s": round(r.train_seconds, 2),
                         "predict_s": round(r.predict_seconds, 2), "wall_s": round(wall, 2),
                         "steps": r.info.get("steps", "")})
            print(f"n={n:6d} {method:14s} train {r.train_acc:.3f} test {r.test_acc:.3f} wall {wall:7.1f} s"
                  + (f" ({settings['epochs']} epochs, {r.info['steps']} steps)" if method == "sgd" else ""),
                  flush=True)
        skipped = sorted(set(args.methods) - set(methods))
        if skipped:
            print(f"n={n:6d} skipped {skipped}: kernel SVM is O(n^2) memory/time beyond --svm-max {args.svm_max}")
    write_csv(f"sweep_{args.target}_L{args.length}", rows)


def part_paper_block(args: argparse.Namespace) -> None:
    import torch

    from llm_erm.methods.sgd import Vocabulary, build_model, parameter_count
    from llm_erm.methods.torch_train import enable_checkpointing, torch_threads, train

    print(f"qwen3-1.7b parameters (meta device, vocab 3): {parameter_count('qwen3-1.7b', 3):,}")
    print(f"qwen3-0.6b parameters (meta device, vocab 3): {parameter_count('qwen3-0.6b', 3):,}")
    settings = check_learner("sgd", {"size": "qwen3-1.7b", "device": "cpu", "epochs": 1, "batch_size": 20,
                                     "eval_points": 1})
    settings["layers"] = 1
    vocab = Vocabulary("01")
    rng = random.Random(0)
    x = ["".join(rng.choice("01") for _ in range(50)) for _ in range(60)]
    y = [s.count("1") % 2 for s in x]
    with torch_threads(1):
        torch.manual_seed(0)
        model = build_model(settings, vocab.size, positions=52, pad_id=vocab.pad, bos_id=vocab.bos)
        enable_checkpointing(model.backbone)
        block = sum(p.numel() for p in model.backbone.layers[0].parameters())
        data = vocab.encode(x, y, 50)
        out = train(model, data, data.rows(slice(0, 20)), settings=settings, device=torch.device("cpu"),
                    precision="fp32", seed=0)
    per_step = out.train_seconds / out.steps
    print(f"one 1.7B-shaped block ({block:,} parameters), batch 20 x 51 tokens, 1 thread, checkpointed, "
          f"AdamW: {per_step:.2f} s per step ({out.steps} steps) -> x28 blocks = {28 * per_step:.0f} s per step, "
          f"{2000 * 28 * per_step / 3600:.0f} h for upstream's 2 000-step run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["classical", "sgd", "sweep", "paper-block"])
    parser.add_argument("--datasets", default=str(Path(tempfile.gettempdir()) / "llm-erm-bench-datasets"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--targets", nargs="+", default=list(SEED_TARGETS))
    parser.add_argument("--lengths", nargs="+", type=int, default=None, help="sgd: only these lengths")
    parser.add_argument("--epochs", type=int, default=200, help="sgd grid epochs (upstream: 200)")
    parser.add_argument("--eval-points", type=int, default=5, help="sgd grid: test evaluations per run")
    parser.add_argument("--tag", default="", help="sgd: suffix of the CSV name (runs split over invocations)")
    parser.add_argument("--target", default="fn_a", help="sweep target")
    parser.add_argument("--length", type=int, default=50, help="sweep length")
    parser.add_argument("--sizes", nargs="+", type=int, default=[200, 1_000, 10_000, 100_000])
    parser.add_argument("--methods", nargs="+", default=[*CLASSICAL, "sgd"], help="sweep methods")
    parser.add_argument("--svm-max", type=int, default=10_000, help="sweep: largest n for the kernel SVM")
    args = parser.parse_args()
    print(machine_note("start"), f"| calibration {calibrate():.2f} s | python {sys.version.split()[0]}", flush=True)
    start = time.perf_counter()
    parts = {"classical": part_classical, "sgd": part_sgd, "sweep": part_sweep, "paper-block": part_paper_block}
    parts[args.part](args)
    print(f"\n{args.part}: {time.perf_counter() - start:.0f} s in all")
    print(machine_note("end"), f"| calibration {calibrate():.2f} s", flush=True)


if __name__ == "__main__":
    main()

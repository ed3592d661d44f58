"""Build the full default dataset grid (12 seed targets x 5 lengths x 10 200 samples) and time it.

    .venv/bin/python benchmarks/bench_datasets.py [--workers 1 2] [--keep DIR]

Prints, for a build from an empty directory with each worker count: per-target wall time (one
process), total wall time, peak RSS; then the re-run time on the complete store, with two
baselines measured in the same run:
  - re-run vs the floor of reading and hashing every split file (what verification must do);
  - the vectorised dyck2 word generator vs a naive pure-Python loop (fn_h, L=100, 5 100 words).
Targets: full grid < 60 s on 2 cores; re-run < 3 s.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.datasets.batch import build_all, make_specs
from llm_erm.datasets.generators import class_sampler
from llm_erm.datasets.targets import get_target


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident set size (MiB) of this process and of its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def build_grid(root: Path, workers: int) -> tuple[float, dict[str, float]]:
    specs = make_specs()
    per_target: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    if workers == 1:
        for spec in specs:
            t0 = time.perf_counter()
            build_dataset(spec, root)
            per_target[spec.target] += time.perf_counter() - t0
    else:
        build_all(specs, root, workers)
    return time.perf_counter() - start, dict(per_target)


def hash_floor(root: Path) -> float:
    start = time.perf_counter()
    for path in sorted(root.glob("*/L*/seed*/*.txt")):
        hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - start


def naive_dyck2_words(length: int, n: int, seed: int) -> float:
    """The unvectorised way: one well-nested word at a time in a Python loop."""
    rnd = random.Random(seed)
    start = time.perf_counter()
    words = set()
    while len(words) < n:
        stack: list[str] = []
        out = []
        for i in range(length // 2):
            remaining = length // 2 - i
            if not stack or (len(stack) < remaining and rnd.random() < 0.5):
                kind = rnd.randrange(2)
                stack.append(kind)
                out.append(f"{kind}0")
            else:
                out.append(f"{stack.pop()}1")
        words.add("".join(out))
    return time.perf_counter() - start


def vectorised_dyck2_words(length: int, n: int, seed: int) -> float:
    draw = class_sampler(get_target("fn_h"), length, 1)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    words: set[str] = set()
    while len(words) < n:
        words.update(draw(rng, n - len(words)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--keep", type=Path, help="build into this directory instead of a temporary one")
    args = parser.parse_args()

    specs = make_specs()
    print(f"grid: {len({s.target for s in specs})} targets, {len(specs)} datasets, "
          f"{sum(sum(s.sizes.values()) for s in specs):,} samples\n")
    last_root = None
    for workers in args.workers:
        root = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
        total, per_target = build_grid(root, workers)
        if per_target:
            print(f"per target (1 process), seconds for its {len(specs) // len(per_target)} lengths:")
            for target, seconds in sorted(per_target.items(), key=lambda kv: -kv[1]):
                print(f"  {target:6s} {get_target(target).name:24s} {seconds:7.2f}")
        own, children = peak_rss_mb()
        print(f"full grid from empty, {workers} worker(s): {total:7.2f} s   (target < 60 s)   "
              f"peak RSS: main {own:.0f} MiB, workers {children:.0f} MiB\n")
        if last_root is not None:
            shutil.rmtree(last_root, ignore_errors=True)
        last_root = root

    start = time.perf_counter()
    build_all(specs, last_root, workers=max(args.workers))
    rerun = time.perf_counter() - start
    floor = hash_floor(last_root)
    print(f"re-run on the complete store:     {rerun:7.3f} s   (target < 3 s)")
    print(f"baseline: read+hash every split:  {floor:7.3f} s   ratio re-run/baseline = {rerun / floor:.2f}\n")

    per_class = sum(DatasetSpec("fn_h", 100).sizes.values()) // 2
    fast = vectorised_dyck2_words(100, per_class, 1)
    slow = naive_dyck2_words(100, per_class, 1)
    print(f"fn_h L=100, {per_class} positives: vectorised {fast:.3f} s, naive pure-Python loop {slow:.3f} s, "
          f"speed-up {slow / fast:.1f}x")

    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        shutil.move(str(last_root), args.keep)
        print(f"\nstore kept in {args.keep}")
    else:
        shutil.rmtree(last_root, ignore_errors=True)


if __name__ == "__main__":
    main()

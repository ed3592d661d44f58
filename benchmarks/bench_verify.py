"""Cost of verifying candidates in the sandbox, against the unsafe in-process way, measured in one run.

(a) Per candidate, on 10 100 rows (validation 100 + test 10 000) of a real dataset, for a few typical
    programs: the in-process baseline (exec the code in this process, call f on every row, compare with
    the labels: what the original code did) vs the same through the sandbox (per candidate: a fresh
    supervisor in fresh IPC and mount namespaces, a fresh tmpfs, a candidate process with its own uid,
    seccomp and Landlock; inputs in, marks out in chunks under the CPU allowance, scoring outside), and
    the full verify_candidate (extraction, sanitising, sandbox, scoring). Target: sandboxed <= 1.5 x
    in-process + 20 ms.
(b) Throughput of 100 mixed candidates (correct, wrong, broken and hostile ones, timeouts included)
    submitted from as many threads as there are cores, with one sandbox worker per core; the baseline
    is the same 100 candidates through a single worker.
(c) The worst cases of the hostile set (issue 20), one at a time on fn_a L=20 (400 rows, the default
    0.01 s per input, 1024 MB): wall time, the orchestrator's CPU (thread time of verify_candidate's caller)
    and host memory (the peak resident size of the worker's whole process tree, sampled every 10 ms, and
    the orchestrator's own growth).

The load average before and after is printed: the machine is shared, read the figures with it.

    .venv/bin/python benchmarks/bench_verify.py [--repeat N] [--candidate-timeout S] [--mode bwrap|rlimit|auto]
                                                [--only a,b,c]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.verify import Sandbox, verify_candidate, verify_splits

PROGRAMS = Path(__file__).resolve().parent.parent / "tests" / "programs"
HOSTILE = Path(__file__).resolve().parent.parent / "tests" / "hostile"

TYPICAL = {
    "parity, str.count (fn_a)": ("fn_a", 100, "def f(x):\n    return x.count('1') % 2\n"),
    "parity, explicit loop (fn_a)": (
        "fn_a", 100, "def f(x):\n    total = 0\n    for c in x:\n        if c == '1':\n            total += 1\n"
                     "    return total % 2\n"),
    "dyck2 stack (fn_h)": ("fn_h", 100, (PROGRAMS / "fn_h.py").read_text()),
    "sha256 parity (fn_l)": ("fn_l", 100, (PROGRAMS / "fn_l.py").read_text()),
    "rule-30 step (fn_j)": ("fn_j", 100, (PROGRAMS / "fn_j.py").read_text()),
}


def in_process(code: str, val, test) -> tuple[float, float]:
    """The unsafe baseline: run the candidate here and score it; (val_acc, test_acc)."""
    namespace: dict = {}
    exec(compile(code, "<candidate>", "exec"), namespace)  # noqa: S102 - trusted benchmark programs only
    f = namespace["f"]
    scores = []
    for split in (val, test):
        correct = 0
        for x, y in zip(split.inputs, split.labels, strict=True):
            with contextlib.suppress(Exception):
                correct += int(f(x)) == y
        scores.append(correct / len(split.inputs))
    return scores[0], scores[1]


def interleaved_medians_ms(functions: list, repeat: int) -> list[float]:
    """Median wall time of each function; the functions take turns, so all see the same machine load."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeat):
        for fn, bucket in zip(functions, times, strict=True):
            started = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - started)
    return [statistics.median(bucket) * 1000 for bucket in times]


def per_candidate(datasets_dir: Path, repeat: int, mode: str) -> None:
    print(f"(a) per-candidate cost on 10 100 rows (val 100 + test 10 000), median of {repeat}, interleaved")
    header = f"{'program':32} {'in-process':>11} {'sandbox run':>12} {'verify_cand.':>13} {'ratio':>6} " \
             f"{'overhead':>9} {'target':>8}"
    print(header)
    print("-" * len(header))
    with Sandbox(workers=1, mode=mode) as sandbox:
        for label, (target, length, code) in TYPICAL.items():
            data = build_dataset(DatasetSpec(target, length), datasets_dir)
            val, test, train = data.split("val"), data.split("test"), data.split("train")
            empty = type(train)([])  # the sandbox-only figure runs exactly val + test, like the baseline
            assert in_process(code, val, test) == (1.0, 1.0)
            assert verify_candidate(code, data, sandbox).status == "ok"
            base, run, full = interleaved_medians_ms([
                lambda code=code, val=val, test=test: in_process(code, val, test),
                lambda code=code, val=val, test=test, empty=empty: verify_splits(code, empty, val, test, sandbox, is_code=True),
                lambda code=code, data=data: verify_candidate(code, data, sandbox),
            ], repeat)
            target_ms = 1.5 * base + 20
            verdict = "met" if run <= target_ms else "MISSED"
            print(f"{label:32} {base:9.1f}ms {run:10.1f}ms {full:11.1f}ms {run / base:5.2f}x "
                  f"{run - base:7.1f}ms {verdict:>8}")
        print(f"sandbox mode: {sandbox.mode}" + (f" ({sandbox.fallback_reason})" if sandbox.fallback_reason else ""))
    print("  in-process: exec + call f on every row + score (unsafe); sandbox run: verify on val+test only;")
    print("  verify_cand.: the full verify_candidate (also train, 100 rows); target: sandbox run <= 1.5 x in-process + 20 ms")


def mixed_candidates(count: int, flood: bool = True) -> list[str]:
    """The mix of the original benchmark. flood=False replaces the output flood (8 MB written per input:
    ~2.3 ms of CPU per input, within the allowance, so it now runs to the end, ~23 s, where the old
    whole-candidate limit of 2 s cut it) by another hostile program."""
    good = [(PROGRAMS / "fn_a.py").read_text(), "def f(x):\n    return sum(map(int, x)) % 2\n"]
    wrong = ["def f(x):\n    return 0\n", "def f(x):\n    return x[0] == '1'\n",
             "def f(x):\n    return x.count('11') % 2\n"]
    broken = ["def f(x)\n    return 1\n", "I do not know.", "import nothing_here\ndef f(x):\n    return 1\n",
              "def f(x):\n    return int(x) / 0\n"]
    hostile = [(HOSTILE / f"{name}.py").read_text() for name in
               ("memory_bomb", "fork_bomb", "os_exit", "kill_parent", "lying_objects",
                "flood_output" if flood else "stop_parent")]
    looping = (HOSTILE / "infinite_loop.py").read_text()
    pool = good * 4 + wrong * 2 + broken + hostile
    candidates = [pool[i % len(pool)] for i in range(count)]
    for i in range(0, count, 34):  # three infinite loops per 100
        candidates[i] = looping
    return candidates


def throughput(datasets_dir: Path, time_per_input_s: float, mode: str, flood: bool) -> None:
    data = build_dataset(DatasetSpec("fn_a", 100), datasets_dir)
    candidates = mixed_candidates(100, flood)
    cores = os.cpu_count() or 1
    print(f"\n(b) throughput: 100 mixed candidates on fn_a L=100 (10 200 rows each), "
          f"{time_per_input_s:g} s of CPU per input, {'with' if flood else 'without'} the output flood")
    header = f"{'setting':28} {'wall':>8} {'candidates/s':>13}"
    print(header)
    print("-" * len(header))
    rates = {}
    for workers in sorted({1, cores}):
        with Sandbox(workers=workers, time_per_input_s=time_per_input_s, mode=mode) as sandbox, \
                ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda c: verify_candidate(c, data, sandbox), candidates[:workers]))  # warm up
            started = time.perf_counter()
            results = list(pool.map(lambda c: verify_candidate(c, data, sandbox), candidates))
            wall = time.perf_counter() - started
        rates[workers] = len(candidates) / wall
        print(f"{f'{workers} worker(s), {workers} thread(s)':28} {wall:7.2f}s {rates[workers]:12.1f}")
    if cores > 1:
        print(f"speed-up with {cores} workers vs 1: {rates[cores] / rates[1]:.2f}x")
    print("statuses:", dict(sorted(Counter(r.status for r in results).items())))


def tree_rss_mb(root: int) -> float:
    """Resident size of `root` and its descendants (shared pages counted in each: an upper bound)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/stat") as handle:
                children.setdefault(int(handle.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as handle:
            total += next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
    return total / 1024


def own_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024


def worst_cases() -> dict[str, tuple[str, bool]]:
    """name -> (answer or program, is_code)."""
    honest = "def f(x):\n    return x.count('1') % 2\n"

    def stall(mechanism: str) -> str:
        return (HOSTILE / "stall.py").read_text().replace("__MECHANISM__", mechanism)

    kwargs = honest + "\n\ndef g():\n    return h(" + ", ".join(f"a{i:06d}={i % 10}" for i in range(20_000)) + ")\n"
    amplifier = honest + "\n\ndef g():\n    return [" + "a," * 127_000 + "]\n"
    nested = '{"code": "def f(x):\\n    return 0\\n", "next": ' * 200 + '{"code": "x"}' + "}" * 200
    return {
        "honest parity": (honest, True),
        "sleep forever": (stall("sleep"), True),
        "select on own pipe": (stall("select"), True),
        "futex (lock held)": (stall("futex"), True),
        "pause()": (stall("pause"), True),
        "SIGSTOP itself": (stall("sigstop"), True),
        "sleep 0.099 s per input": (stall("sleep_per_input"), True),
        "compile bomb 220 KB": (kwargs, True),
        "compile bomb 1 MB (cap)": (kwargs + "#" * 750_000, True),
        "AST amplifier 255 KB": (amplifier, True),
        "memory bomb": ((HOSTILE / "memory_bomb.py").read_text(), True),
        "infinite loop": ((HOSTILE / "infinite_loop.py").read_text(), True),
        "page-cache writer": ((HOSTILE / "page_cache.py").read_text().replace("__ROLE__", "write")
                              .replace("__MECHANISM__", "fadvise"), True),
        "200 nested JSON, 256 KB": ((nested + " " * 256_000)[:255_000], False),
        "1 MB answer": ("```python\n" + honest + "#" + "x" * 1_000_000 + "\n```", False),
    }


def worst_case_table(datasets_dir: Path, mode: str) -> None:
    data = build_dataset(DatasetSpec("fn_a", 20, test_size=200), datasets_dir)
    print("\n(c) worst cases of the hostile set: fn_a L=20 (400 rows), 0.01 s per input, 1024 MB, one at a time")
    header = f"{'candidate':28} {'status':>12} {'wall':>8} {'orch. CPU':>10} {'tree peak':>10} {'orch. +RSS':>11}"
    print(header)
    print("-" * len(header))
    with Sandbox(workers=1, memory_mb=1024, mode=mode) as sandbox:
        for name, (text, is_code) in worst_cases().items():
            if len(sandbox._live) != 1:  # the worker was retired by the last candidate: start the next one
                sandbox.run("def f(x):\n    return 0\n", ["0"])
            (zygote,) = sandbox._live
            peak, done = [0.0], threading.Event()

            def sample(root: int = zygote.process.pid, peak: list = peak, done: threading.Event = done) -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], tree_rss_mb(root))
                    done.wait(0.01)

            sampler = threading.Thread(target=sample)
            rss, cpu, wall = own_rss_mb(), time.thread_time(), time.perf_counter()
            sampler.start()
            try:
                result = verify_candidate(text, data, sandbox, is_code=is_code)
            finally:
                done.set()
                sampler.join()
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            print(f"{name:28} {result.status:>12} {wall:7.2f}s {cpu:9.3f}s {peak[0]:8.0f}MB {own_rss_mb() - rss:9.1f}MB")
    print("  orch. CPU: the CPU time of the thread that called verify_candidate; tree peak: bwrap + zygote +")
    print("  supervisor + candidate, RSS summed (shared pages counted in each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15, help="repetitions per figure in (a)")
    parser.add_argument("--candidate-timeout", type=float, default=0.01, help="CPU seconds per input in (b)")
    parser.add_argument("--with-flood", action="store_true", help="also (b) with the original mix's output flood")
    parser.add_argument("--mode", choices=("bwrap", "rlimit", "auto"), default="bwrap", help="sandbox mode")
    parser.add_argument("--only", default="a,b,c", help="which parts to run (comma-separated: a, b, c)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        if "a" in parts:
            per_candidate(Path(tmp), args.repeat, args.mode)
        if "b" in parts:
            throughput(Path(tmp), args.candidate_timeout, args.mode, flood=False)
            if args.with_flood:
                throughput(Path(tmp), args.candidate_timeout, args.mode, flood=True)
        if "c" in parts:
            worst_case_table(Path(tmp), args.mode)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

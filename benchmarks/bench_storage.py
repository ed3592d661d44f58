"""Results on the local disk against results on an S3-compatible store (moto's S3 HTTP API on loopback).

The same 60-cell grid as bench_grid.py (12 targets x 5 lengths x 5 attempts = 300 calls, the wire server in its
own process answering after 1 s with a program that never reaches validation 1.0, concurrency 16), run with
run_grid in a fresh process after a one-call warm-up: once with --results-dir on the local disk, once on
s3://; then a resume of the finished S3 grid (nothing left to do). Prints wall time and, for S3, the requests
the store answered (from its access log) per model answer, by HTTP method.

    .venv/bin/python benchmarks/bench_storage.py [--latency 1.0] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from s3 import BUCKET, MotoServer  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="bench-storage-"))
ANSWER = json.dumps({"code": "def f(x):\n    return 0"})

SERVER = """
import signal, sys
from llm_erm.wire.server import WireServer
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
with WireServer(lambda endpoint, body: sys.argv[2], port=0, latency_s=float(sys.argv[1])) as server:
    print(server.url, flush=True)
    signal.sigwait({signal.SIGTERM})
"""

RUN = """
import json, sys, time
from llm_erm import GridConfig, run_grid
params, warm = json.loads(sys.argv[1]), json.loads(sys.argv[2])
if warm:
    assert run_grid(GridConfig(**warm)).ok  # imports, the sandbox's first start, the store's first connection
print("measuring", flush=True)
sys.stdin.readline()  # the parent reads the store's request count here
started = time.perf_counter()
result = run_grid(GridConfig(**params))
assert result.ok, result.failure_message()
print(json.dumps({"wall": time.perf_counter() - started, "pending": result.pending_before}), flush=True)
"""


def params(url: str, results: str, run_id: str, concurrency: int) -> dict:
    return {"proposer": {"kind": "openai-chat", "model": "gpt-5", "base_url": url}, "attempts": 5, "trials": 1,
            "concurrency": concurrency, "run_id": run_id, "results_dir": results,
            "datasets_dir": str(WORK / "datasets"), "analyze": False, "retry_delay_s": 0.05}


def measured(p: dict, warm: dict | None, env: dict, s3: MotoServer) -> tuple[dict, dict]:
    child = subprocess.Popen([sys.executable, "-c", RUN, json.dumps(p), json.dumps(warm or {})], env=env, cwd=WORK,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "measuring"
    before = s3.requests()
    child.stdin.write("go\n")
    child.stdin.flush()
    out = json.loads(child.stdout.readline())
    assert child.wait() == 0
    after = s3.requests()
    return out, {k: after.get(k, 0) - before.get(k, 0) for k in after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    model = subprocess.Popen([sys.executable, "-c", SERVER, str(args.latency), ANSWER], stdout=subprocess.PIPE,
                             text=True)
    url = model.stdout.readline().strip()
    try:
        with MotoServer() as s3:
            env = {**os.environ, **s3.env, "PYTHONPATH": str(ROOT)}
            calls = 12 * 5 * 5
            print(f"60 cells x 5 attempts = {calls} calls at {args.latency:.1f} s latency, concurrency "
                  f"{args.concurrency} (ideal {calls * args.latency / args.concurrency:.1f} s)")
            for name, results in (("local disk", str(WORK / "results")), ("loopback S3", f"s3://{BUCKET}/bench")):
                warm = {**params(url, results, "warm", 2), "functions": ["fn_a"], "lengths": [20], "attempts": 1}
                out, requests = measured(params(url, results, "grid", args.concurrency), warm, env, s3)
                line = f"{name:12s}: {out['wall']:6.1f} s wall"
                if name != "local disk":
                    total = sum(requests.values())
                    by = ", ".join(f"{k} {v / calls:.2f}" for k, v in sorted(requests.items()))
                    line += f"; {total} store requests = {total / calls:.2f} per answer ({by})"
                print(line, flush=True)
            out, requests = measured(params(url, f"s3://{BUCKET}/bench", "grid", args.concurrency), None, env, s3)
            print(f"resume of the finished S3 grid: {out['wall']:.1f} s wall, {out['pending']} trials pending, "
                  f"{sum(requests.values())} store requests ({', '.join(f'{k} {v}' for k, v in sorted(requests.items()))})")
    finally:
        model.terminate()
        model.wait()


if __name__ == "__main__":
    main()

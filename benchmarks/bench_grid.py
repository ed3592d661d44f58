"""Grid throughput, resume and orchestration overhead of the erm-grid flow.

Runs the full default grid shape (12 targets x 5 lengths, 5 attempts, 1 trial, 100/100/10 000 splits)
against the wire server on 127.0.0.1, which answers every call after a fixed latency with a program
that never reaches validation 1.0, so all 300 calls are made. Prints:

  1. wall time at 1 s latency and concurrency 16, against the ideal (calls x latency / concurrency) and
     against one call at a time (measured on a sample of calls in the same run, projected to all);
  2. the re-run of the finished grid, through the CLI and through the flow (fresh process, Prefect's
     embedded API started): wall time and model calls;
  3. orchestration overhead per call (the same grid at zero latency) and peak memory of the flow process.

    .venv/bin/python benchmarks/bench_grid.py [--latency 1.0] [--concurrency 16] [--sequential-sample 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="bench-grid-"))
os.environ.update(PREFECT_HOME=str(WORK / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                  PREFECT_LOGGING_LEVEL="ERROR", PREFECT_LOGGING_SERVER_LEVEL="CRITICAL",
                  OPENAI_API_KEY="sk-bench")

ANSWER = json.dumps({"code": "def f(x):\n    return 0"})

# The model server runs in its own process, as a real API would: in the flow's process its threads
# would compete with the flow for the GIL and inflate the figures.
SERVER = """
import signal, sys
from llm_erm.proposers.wire_server import WireServer
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before the server's threads exist
with WireServer(lambda endpoint, body: sys.argv[3], port=int(sys.argv[1]), latency_s=float(sys.argv[2])) as server:
    print(server.url, flush=True)
    signal.sigwait({signal.SIGTERM})
    print(server.request_count, flush=True)
"""


class ServerProcess:
    """The wire server in a child process; `calls` is its request count, read when it stops."""

    def __init__(self, latency: float, port: int = 0):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(latency), ANSWER],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        self.calls = None

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.calls = int(self.proc.stdout.readline())
        self.proc.wait()


def params(server_url: str, run_id: str, concurrency: int) -> dict:
    return dict(proposer="openai-chat", model="gpt-5", base_url=server_url, attempts=5, trials=1,
                concurrency=concurrency, run_id=run_id, results_dir=str(WORK / "results"),
                datasets_dir=str(WORK / "datasets"), analyze=False, retry_delay_s=0.05)


def sequential(server_url: str, prompts: list[str], n: int) -> float:
    """Seconds per call for one call at a time, through the same proposer the flow uses."""
    from llm_erm.proposers import ProposerConfig, ProposeRequest, make_proposer

    proposer = make_proposer(ProposerConfig(kind="openai-chat", model="gpt-5", base_url=server_url))
    start = time.perf_counter()
    for i in range(n):
        proposer.propose(ProposeRequest(prompt=prompts[i % len(prompts)], trial=1, attempt=i))
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sequential-sample", type=int, default=10)
    args = parser.parse_args()

    from llm_erm.datasets import build_all, make_specs
    from llm_erm.flows.grid import erm_grid
    from llm_erm.results import ledger

    specs = make_specs()
    t = time.perf_counter()
    build_all(specs, WORK / "datasets")
    print(f"datasets for {len(specs)} cells built in {time.perf_counter() - t:.1f} s (not part of the figures)")

    with ServerProcess(0.0) as warm:  # start Prefect's API once, outside the timings
        erm_grid(**{**params(warm.url, "warm-up", 2), "functions": ["fn_a"], "lengths": [20], "attempts": 1})

    with ServerProcess(args.latency) as server:
        t = time.perf_counter()
        erm_grid(**params(server.url, "latency", args.concurrency))
        wall = time.perf_counter() - t
    calls = server.calls
    prompts = sorted({r["prompt"] for r in ledger.read_attempts(WORK / "results" / "latency").to_pylist()})
    with ServerProcess(args.latency) as other:
        per_call = sequential(other.url, prompts, args.sequential_sample)

    # 2. resume, in fresh processes, same base URL (so the same cache keys): the CLI, and the flow itself
    with ServerProcess(args.latency, port=server.port) as again:
        cli = [str(Path(sys.executable).with_name("llm-erm")), "run", "--proposer", "openai-chat", "--model", "gpt-5",
               "--base-url", again.url, "--attempts", "5", "--concurrency", str(args.concurrency),
               "--run-id", "latency", "--results-dir", str(WORK / "results"), "--datasets-dir",
               str(WORK / "datasets"), "--no-analyze"]
        t = time.perf_counter()
        done = subprocess.run(cli, capture_output=True, text=True, cwd=WORK)
        cli_wall = time.perf_counter() - t
        assert done.returncode == 0 and "is complete" in done.stderr, done.stderr[-2000:]
        flow = [sys.executable, "-c", "import json, sys; from llm_erm.flows.grid import erm_grid; "
                "erm_grid(**json.loads(sys.argv[1]))", json.dumps(params(again.url, "latency", args.concurrency))]
        t = time.perf_counter()
        done = subprocess.run(flow, capture_output=True, text=True, cwd=WORK)
        flow_wall = time.perf_counter() - t
        assert done.returncode == 0, done.stderr[-2000:]
    resume_calls = again.calls

    with ServerProcess(0.0) as fast:
        t = time.perf_counter()
        erm_grid(**params(fast.url, "zero-latency", args.concurrency))
        zero_wall = time.perf_counter() - t
    zero_calls = fast.calls

    ideal = calls * args.latency / args.concurrency
    seq = per_call * calls
    print()
    print(f"| grid: {len(specs)} cells x 5 attempts, latency {args.latency:g} s, concurrency {args.concurrency} | seconds | ratio |")
    print("|---|---|---|")
    print(f"| erm-grid flow ({calls} calls) | {wall:.1f} | {wall / ideal:.2f}x ideal |")
    print(f"| ideal: calls x latency / concurrency | {ideal:.1f} | 1.00x |")
    rounds = -(-len(specs) // args.concurrency)  # trials of 5 sequential calls, 16 at a time
    print(f"| floor with sequential attempts: {rounds} rounds of 5 calls | {rounds * 5 * args.latency:.1f} | "
          f"{rounds * 5 * args.latency / ideal:.2f}x |")
    print(f"| one call at a time ({per_call:.3f} s/call on {args.sequential_sample} calls, projected) | {seq:.1f} | "
          f"{seq / wall:.1f}x slower than the flow |")
    print(f"| re-run of the finished grid: `llm-erm run` (sees it complete, starts no Prefect) | {cli_wall:.1f} | "
          f"{resume_calls} model calls in both re-runs |")
    print(f"| re-run of the finished grid: the erm-grid flow in a fresh process, incl. Prefect's API start | "
          f"{flow_wall:.1f} | no task run for any trial |")
    print(f"| zero latency: whole grid ({zero_calls} calls, verify on 10 100 rows each) | {zero_wall:.1f} | "
          f"{1000 * zero_wall / zero_calls:.1f} ms per call, all orchestration + verification |")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| peak RSS of the flow process | {rss:.0f} MiB | |")
    print(f"\nwork dir: {WORK}")


if __name__ == "__main__":
    main()

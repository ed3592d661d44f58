"""Grid throughput, orchestration cost and fixed cost of the engine, plain and under Prefect.

The model is the wire server on 127.0.0.1, in its own process (as a real API is), answering every call after a
fixed latency with a program that never reaches validation 1.0, so every attempt is made. Verification is the
real sandbox on the 10 100-row splits. Prints:

  1. the full default grid shape (12 targets x 5 lengths x 5 attempts = 300 calls) at 1 s latency, at
     concurrency 16 and 64, through the erm-grid flow on a standing Prefect server: wall time against the ideal
     (calls x latency / concurrency, and the floor that 5 sequential attempts per trial impose);
  2. the same grid at zero latency: calls/s (the orchestration ceiling, verification included), interpreter
     (CPU) time of the flow process per call, its peak memory; the plain engine (run_grid) beside it;
  3. the fixed cost of `llm-erm run`: seconds from the command to its first model call, with a Prefect server
     already running; and a small grid (4 targets x 1 length x 5 attempts) against one call at a time, verified
     one after another (the shape of the original runner), on the same server.

    .venv/bin/python benchmarks/bench_grid.py [--latency 1.0] [--skip-full]
    .venv/bin/python benchmarks/bench_grid.py --fixed-cost     # only 3., on every path, a few repeats each
    .venv/bin/python benchmarks/bench_grid.py --only-full --concurrency 16 64 16 64 [--busy 1]  # paired, loaded

`--fixed-cost` times `llm-erm run` (one target, datasets already built) from the command to its first model
call with a Prefect server configured (PREFECT_API_URL), with none (its temporary server), and with
--no-prefect; the goal is 2 s and 5 s on an idle machine. The machine's load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="bench-grid-"))
os.environ.update(PREFECT_HOME=str(WORK / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                  PREFECT_LOGGING_LEVEL="WARNING", OPENAI_API_KEY="sk-bench")
ANSWER = json.dumps({"code": "def f(x):\n    return 0"})
PREFECT = str(Path(sys.executable).with_name("prefect"))
LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))

SERVER = """
import signal, sys, time
from llm_erm.wire.server import WireServer
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
first = []
def answer(endpoint, body, text=sys.argv[3]):
    first or first.append(time.time())
    return text
with WireServer(answer, port=0, latency_s=float(sys.argv[2])) as server:
    print(server.url, flush=True)
    signal.sigwait({signal.SIGTERM})
    print(server.calls, first[0] if first else 0, flush=True)
"""


class ModelServer:
    def __init__(self, latency: float):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, "0", str(latency), ANSWER],
                                     stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def __enter__(self) -> ModelServer:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        calls, first = self.proc.stdout.readline().split()
        self.posts, self.first_call_at = int(calls), float(first)
        self.proc.wait()


def prefect_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{api}/health", timeout=2).read() == b"true":
                return proc, api
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the Prefect server did not start")


def params(url: str, run_id: str, concurrency: int, **extra) -> dict:
    return {"proposer": {"kind": "openai-chat", "model": "gpt-5", "base_url": url}, "attempts": 5, "trials": 1,
            "concurrency": concurrency, "run_id": run_id, "results_dir": str(WORK / "results"),
            "datasets_dir": str(WORK / "datasets"), "analyze": False, "retry_delay_s": 0.05, **extra}


FLOW = """
import json, resource, sys, time
from llm_erm import prefect_env
prefect_env.configure()
mode, params, warm = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
from llm_erm import GridConfig, run_grid
from llm_erm.flows.grid import erm_grid

def once(p):
    if mode == "flow":
        state = erm_grid(**p, return_state=True)
        assert state.is_completed(), state.message
    else:
        assert run_grid(GridConfig(**p)).ok

once(warm)  # imports, the API client, the sandbox's first start: the fixed cost, not a per-call one
started_cpu, started = time.process_time(), time.perf_counter()
once(params)
print(json.dumps({"wall": time.perf_counter() - started, "cpu": time.process_time() - started_cpu,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_in_process(mode: str, p: dict, api: str) -> dict:
    """One grid in a fresh process (after an in-process warm-up run of one call): wall, CPU, peak RSS."""
    warm = {**p, "run_id": p["run_id"] + "-warm", "functions": ["fn_a"], "lengths": [20], "attempts": 1}
    done = subprocess.run([sys.executable, "-c", FLOW, mode, json.dumps(p), json.dumps(warm)],
                          capture_output=True, text=True,
                          env={**os.environ, "PREFECT_API_URL": api}, cwd=WORK)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


SEQUENTIAL = """
import json, sys, time
from pathlib import Path
from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.proposers import ProposerConfig, ProposeRequest, make_proposer
from llm_erm.proposers.prompt import build_prompt
from llm_erm.verify import Sandbox, verify_candidate
url, targets, work = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3])
started = time.perf_counter()
proposer = make_proposer(ProposerConfig(kind="openai-chat", base_url=url))
with Sandbox(workers=1) as sandbox:
    for target in targets:
        dataset = build_dataset(DatasetSpec(target, 20), work / "datasets")
        prompt = build_prompt(dataset)
        for attempt in range(1, 6):
            text = proposer.propose(ProposeRequest(prompt, 1, attempt)).text
            verify_candidate(text, dataset, sandbox)
print(time.perf_counter() - started)
"""


def first_call_s(api: str | None, no_prefect: bool, run_id: str) -> float:
    """Seconds from starting `llm-erm run` to the model server receiving its first call."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    if api:
        env["PREFECT_API_URL"] = api
    with ModelServer(0.0) as model:
        started = time.time()
        done = subprocess.run([LLM_ERM, "run", "--functions", "fn_a", "--lengths", "20", "--attempts", "1",
                               "--test-size", "400", "--proposer", "openai-chat", "--base-url", model.url,
                               "--run-id", run_id, "--results-dir", str(WORK / "results"), "--datasets-dir",
                               str(WORK / "datasets"), "--no-analyze", *(["--no-prefect"] if no_prefect else [])],
                              capture_output=True, text=True, cwd=WORK, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    return model.first_call_at - started


def fixed_cost(repeats: int = 3) -> None:
    from llm_erm.datasets import build_all, make_specs

    build_all(make_specs(["fn_a"], [20], test_size=400), WORK / "datasets")
    server, api = prefect_server()
    rows = []
    try:
        first_call_s(api, False, "warm")  # the server's database and caches warm, as a standing server's are
        for label, where, plain in (("a Prefect server configured (PREFECT_API_URL)", api, False),
                                    ("no server configured (its own temporary server)", None, False),
                                    ("--no-prefect", None, True)):
            times = sorted(first_call_s(where, plain, f"fc-{len(rows)}-{i}") for i in range(repeats))
            rows.append((label, times))
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(f"\nload average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machines: see it)")
    print("\n| `llm-erm run` to its first model call | median | all |\n|---|---|---|")
    for label, times in rows:
        print(f"| {label} | {times[len(times) // 2]:.2f} s | {', '.join(f'{t:.2f}' for t in times)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--skip-full", action="store_true", help="skip the 1 s-latency runs of the full grid")
    parser.add_argument("--fixed-cost", action="store_true", help="only the fixed cost, on every path")
    parser.add_argument("--only-full", action="store_true", help="only the 1 s-latency runs of the full grid")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64],
                        help="the full grid's concurrencies, in order (e.g. 16 64 16 64: paired runs under load)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="N busy-loop processes (one core each) during the full grid's runs: CPU contention")
    args = parser.parse_args()
    if args.fixed_cost:
        fixed_cost()
        return

    from llm_erm.datasets import build_all, make_specs

    specs = make_specs()
    t = time.perf_counter()
    build_all(specs, WORK / "datasets")
    print(f"datasets for {len(specs)} cells built in {time.perf_counter() - t:.1f} s (not part of the figures)")
    server, api = prefect_server()
    rows = []
    try:
        with ModelServer(0.0) as warm:  # migrate and warm the API once, outside the timings
            run_in_process("flow", {**params(warm.url, "warm-up", 2), "functions": ["fn_b"], "lengths": [20],
                                    "attempts": 1}, api)
        if not args.skip_full:
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
            try:
                for n, concurrency in enumerate(args.concurrency):
                    with ModelServer(args.latency) as model:
                        got = run_in_process("flow", params(model.url, f"latency-{concurrency}-{n}", concurrency), api)
                    calls = model.posts - 1  # the in-process warm-up made one
                    ideal = calls * args.latency / concurrency
                    floor = max(ideal, -(-len(specs) // concurrency) * 5 * args.latency)
                    rows.append((f"erm-grid flow, {calls} calls, {args.latency:g} s latency, concurrency "
                                 f"{concurrency}", f"{got['wall']:.1f} s", f"{got['wall'] / ideal:.2f}x ideal "
                                 f"({ideal:.1f} s); floor of 5 sequential attempts {floor:.1f} s; load "
                                 f"{os.getloadavg()[0]:.1f}{f', {args.busy} busy loop(s)' if args.busy else ''}"))
            finally:
                for loop in busy:
                    loop.kill()
                    loop.wait()
        for mode in () if args.only_full else ("flow", "engine"):
            with ModelServer(0.0) as model:
                got = run_in_process(mode, params(model.url, f"zero-{mode}", 16), api)
            calls = model.posts - 1
            rows.append((f"{'erm-grid flow' if mode == 'flow' else 'run_grid, no Prefect'}: {calls} calls at "
                         "zero latency", f"{calls / got['wall']:.1f} calls/s",
                         f"{1000 * got['cpu'] / calls:.1f} ms interpreter (CPU) time per call, peak RSS "
                         f"{got['rss_mib']:.0f} MiB"))

        if not args.only_full:  # the fixed cost and the small grid
            small = ["fn_a", "fn_b", "fn_c", "fn_d"]
            with ModelServer(args.latency) as model:
                started = time.time()
                done = subprocess.run(
                    [LLM_ERM, "run", "--functions", *small, "--lengths", "20", "--proposer", "openai-chat", "--base-url",
                     model.url, "--concurrency", "4", "--run-id", "small", "--results-dir", str(WORK / "results"),
                     "--datasets-dir", str(WORK / "datasets"), "--no-analyze"],
                    capture_output=True, text=True, cwd=WORK, env={**os.environ, "PREFECT_API_URL": api})
                ours = time.time() - started
                assert done.returncode == 0, done.stderr[-3000:]
            first = model.first_call_at - started
            with ModelServer(args.latency) as model:
                seq = subprocess.run([sys.executable, "-c", SEQUENTIAL, model.url, ",".join(small), str(WORK)],
                                     capture_output=True, text=True, cwd=WORK)
                assert seq.returncode == 0, seq.stderr[-3000:]
                sequential = float(seq.stdout.strip())
            rows.append(("`llm-erm run` to its first model call (a Prefect server running)", f"{first:.2f} s", ""))
            rows.append((f"small grid ({len(small)} targets x 5 attempts, {args.latency:g} s latency): `llm-erm run`, "
                         "concurrency 4", f"{ours:.1f} s", f"{sequential / ours:.2f}x faster than one call at a time "
                         f"({sequential:.1f} s, verified in turn, no orchestrator)"))
    finally:
        server.terminate()
        server.wait(timeout=60)
    print("\n| measurement | figure | against |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\npeak RSS of this driver: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"work dir {WORK}")


if __name__ == "__main__":
    main()

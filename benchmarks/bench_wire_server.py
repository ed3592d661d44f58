"""What the proposer layer costs on top of the wire, and whether the test server keeps up with a grid.

    .venv/bin/python benchmarks/bench_wire_server.py [--calls 200]

1. Per-call overhead: `calls` sequential propose() calls of ResponsesProposer / ChatProposer against
   the local WireServer (no added latency), against the baseline of the same number of bare
   `openai` client calls to the same server in the same run. Ratio ~1 means our parsing, usage,
   pricing and error mapping add nothing measurable.
2. Concurrency: the grid benchmark's setting, 1 s server latency and 16 concurrent calls (16 and 64
   calls), wall time against the ideal (calls / 16 x 1 s).
3. Replay: loading a 10 000-record JSONL and answering from it, per call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from llm_erm.proposers import ProposerConfig, ProposeRequest, make_proposer
from llm_erm.proposers.replay import ReplayProposer
from llm_erm.wire.server import WireServer

PROMPT = "**Problem Statement:**\n" + "\n".join(f"{i:020b} -> {i % 2}" for i in range(100))


def per_call_ms(fn, calls: int) -> float:
    fn(0)  # warm the connection
    started = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - started) / calls * 1000


def overhead(calls: int) -> list[tuple[str, float, float]]:
    rows = []
    with WireServer() as server:
        client = openai.OpenAI(base_url=server.url, api_key="bench", max_retries=0, timeout=30)
        for kind in ("openai-responses", "openai-chat"):
            proposer = make_proposer(ProposerConfig(kind=kind, base_url=server.url, call_timeout_s=30))
            params = proposer.request_params()
            if kind == "openai-responses":
                def bare(i, params=params):
                    return client.responses.create(model="gpt-5", input=[{"role": "user", "content": PROMPT}],
                                                   **params).output_text
            else:
                def bare(i, params=params):
                    return client.chat.completions.create(
                        model="gpt-5", messages=[{"role": "user", "content": PROMPT}], **params
                    ).choices[0].message.content

            def ours(i, proposer=proposer):
                return proposer.propose(ProposeRequest(PROMPT, 1, i)).text

            # Interleave three rounds each so a busy machine skews both sides alike.
            ours_ms, bare_ms = [], []
            for _ in range(3):
                bare_ms.append(per_call_ms(bare, calls // 3))
                ours_ms.append(per_call_ms(ours, calls // 3))
            rows.append((kind, statistics.median(ours_ms), statistics.median(bare_ms)))
    return rows


def concurrency() -> list[tuple[int, float, float]]:
    rows = []
    with WireServer(latency_s=1.0) as server:
        proposer = make_proposer(ProposerConfig(kind="openai-chat", base_url=server.url, call_timeout_s=30))
        proposer.propose(ProposeRequest("warm", 1, 0))
        for calls in (16, 64):
            started = time.perf_counter()
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: proposer.propose(ProposeRequest(f"p{i}", 1, i)), range(calls)))
            rows.append((calls, time.perf_counter() - started, calls / 16 * 1.0))
    return rows


def replay(records: int = 10_000) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for i in range(records):
                out.write(json.dumps({"prompt": f"{PROMPT}\n{i}", "trial": 1, "attempt": 1, "text": f"answer {i}",
                                      "prompt_tokens": 900, "completion_tokens": 4000, "cost_usd": 0.04}) + "\n")
        started = time.perf_counter()
        proposer = ReplayProposer(path)
        proposer.preflight()
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(0, records, 10):
            proposer.propose(ProposeRequest(f"{PROMPT}\n{i}", 1, 1))
        per_call_us = (time.perf_counter() - started) / (records // 10) * 1e6
    return load_s, per_call_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per side in the overhead test")
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

    print(f"1. per-call overhead, {args.calls} sequential calls, prompt {len(PROMPT)} chars, local server")
    print(f"   {'endpoint':<18}{'propose() ms':>14}{'bare client ms':>16}{'ratio':>8}")
    for kind, ours, bare in overhead(args.calls):
        print(f"   {kind:<18}{ours:>14.2f}{bare:>16.2f}{ours / bare:>8.2f}")

    print("\n2. 16 concurrent calls, 1 s server latency")
    print(f"   {'calls':<8}{'wall s':>9}{'ideal s':>9}{'ratio':>8}")
    for calls, wall, ideal in concurrency():
        print(f"   {calls:<8}{wall:>9.2f}{ideal:>9.2f}{wall / ideal:>8.2f}")

    load_s, per_call_us = replay()
    print("\n3. replay from a 10 000-record JSONL")
    print(f"   load + index {load_s:.2f} s; propose {per_call_us:.0f} us per call")


if __name__ == "__main__":
    main()

"""`llm-erm view` on the default grid's shape: time to first render and page weight.

Synthesises, in a temp dir, 12 targets x 5 lengths = 60 cells x 5 trials x 5 attempts = 1 500 attempt rows with
realistic text (the paper prompt's 100 training lines, a JSON answer holding 10-30 lines of code), written where
the methods axis puts them (attempts/erm/<target>/L<length>/trial<t>.parquet). Then, with a fresh viewer (empty
cache) for every repetition and headless Chromium driven over the DevTools protocol, it times:

  1. the run's grid page (60 cells): from navigation to the grid drawn, cold (first request of a new server) and
     warm (the page opened again: the server's cache is filled);
  2. one attempt's page (prompt, response, highlighted code): from navigation to the code drawn;
  3. baselines measured in the same run: reading the whole ledger with pyarrow (every column of every trial
     file: the I/O any viewer of this run pays) and Chromium drawing a trivial page (the browser's own floor);

and the page weight of each page: the bytes of HTML + JS + CSS + JSON it fetches, as sent (gzip) and raw.
It prints the load average before and after: the machine is shared.

    .venv/bin/python benchmarks/bench_viewer.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from chromium_cdp import Chromium  # noqa: E402  (tests/chromium_cdp.py: a DevTools client over a pipe)

from llm_erm.results import ledger  # noqa: E402
from llm_erm.viewer import make_server  # noqa: E402

TARGETS = [f"fn_{c}" for c in "abcdefghijkl"]
LENGTHS = (100, 50, 30, 25, 20)
TRIALS = ATTEMPTS = 5
STATUSES = ["ok"] * 7 + ["syntax_error", "runtime_errors", "timeout", "no_code"]
HEADER = ("**Problem Statement:**\nGiven a sequence of input vectors (binary, length {L}) and their corresponding "
          "scalar binary outputs ('0' or '1'), find a concise Python function `f(x)` that accurately approximates "
          "the underlying relationship. The function should not be a trainable model, but a direct logical or "
          "mathematical representation of the target function.\n**Data Examples:**\n```\n")


def synthesise(root: Path, seed: int = 0) -> Path:
    rng = random.Random(seed)
    run_dir = root / "bench"
    for target in TARGETS:
        for length in LENGTHS:
            lines = "\n".join("".join(rng.choices("01", k=length)) + f" -> {rng.randint(0, 1)}" for _ in range(100))
            prompt = HEADER.format(L=length) + lines + '\n```\n\nYou must output ONLY a single JSON object: {"code": "<python function>"}.'
            for trial in range(1, TRIALS + 1):
                rows = []
                for attempt in range(1, ATTEMPTS + 1):
                    status = rng.choice(STATUSES)
                    val = round(rng.uniform(0.45, 0.99), 2) if status in ("ok", "runtime_errors", "timeout") else None
                    body = "\n".join(f"    s{i} = x[{i}] == '1' and x[{i + 1}] == '0'  # check {i}"
                                     for i in range(rng.randint(8, 28)))
                    code = f"def f(x):\n{body}\n    return int(x.count('1') % 2 == {attempt % 2})\n"
                    rows.append({
                        "run_id": "bench", "target": target, "target_name": target, "length": length, "trial": trial,
                        "attempt": attempt, "dataset_id": f"{target}-{length}", "proposer": "openai-responses",
                        "model": "gpt-5", "response_model": "gpt-5-2025-08-07", "prompt": prompt,
                        "text": json.dumps({"code": code}), "code": None if status == "no_code" else code,
                        "status": status, "val_acc": val,
                        "test_acc": None if val is None else max(0.0, val - rng.uniform(0, 0.05)),
                        "first_error": "SyntaxError: invalid syntax (<candidate>, line 3)" if status == "syntax_error" else None,
                        "prompt_tokens": 3_000, "completion_tokens": 4_000, "reasoning_tokens": 3_000,
                        "cached_tokens": 1_000, "cost_usd": 0.045, "latency_s": rng.uniform(20, 90),
                        "signature": f"sig{rng.randint(0, 3)}" if val is not None else None, "sandbox": "bwrap",
                        "selected": False, "stopped_early": False, "method": "erm", "method_label": "erm",
                        "n_train": 200,
                    })
                ledger.write_trial(run_dir, "erm", target, length, trial, rows)
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {
        "run_id": "bench", "trials_per_cell": TRIALS, "sandbox": "bwrap",
        "cells": [{"method_label": "erm", "method": "erm", "target": t, "length": n} for t in TARGETS for n in LENGTHS],
    })
    return run_dir


def read_ledger(run_dir: Path) -> int:
    """The baseline: every column of every trial file, into pandas."""
    tables = [pq.read_table(p) for p in sorted((run_dir / "attempts").glob("**/trial*.parquet"))]
    return len(pa.concat_tables(tables).to_pandas())


def fetch(port: int, path: str, encoding: str = "gzip") -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path, headers={"Accept-Encoding": encoding})
    body = connection.getresponse().read()
    connection.close()
    return body


def page_weight(port: int, paths: list[str]) -> tuple[int, int]:
    """(bytes sent with gzip, bytes raw) of the responses to `paths`."""
    sent = sum(len(fetch(port, path, "gzip")) for path in paths)
    raw = sum(len(fetch(port, path, "identity")) for path in paths)
    return sent, raw


class Viewer:
    def __init__(self, results: Path):
        self.server = make_server(results, port=0)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def timed_open(browser: Chromium, url: str, ready: str) -> tuple[float, int]:
    """Seconds from navigation to `ready` being true, and the page's own render time (ms)."""
    browser.navigate("about:blank")
    started = time.perf_counter()
    browser.navigate(url)
    browser.wait_for(f"document.body && document.body.dataset.ready === '1' && !!({ready})", timeout=120,
                     interval=0.005)
    elapsed = time.perf_counter() - started
    return elapsed, int(browser.evaluate("+document.body.dataset.renderMs || 0"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions (median reported)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        started = time.perf_counter()
        run_dir = synthesise(results)
        files = list((run_dir / "attempts").glob("**/trial*.parquet"))
        print(f"synthesised {read_ledger(run_dir)} attempt rows in {len(files)} trial files "
              f"({sum(f.stat().st_size for f in files) / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
        attempt = "#/run/bench/attempt/erm/fn_c/100/3/2"
        figures: dict[str, list[float]] = {k: [] for k in ("ledger", "floor", "grid cold", "grid warm", "attempt",
                                                           "grid render", "attempt render", "api cold", "api warm")}
        with Chromium(width=1400, height=1000) as browser:
            for _ in range(args.repeat):
                t = time.perf_counter()
                read_ledger(run_dir)
                figures["ledger"].append(time.perf_counter() - t)
                t = time.perf_counter()
                browser.navigate("data:text/html,<p id=x>floor</p>")
                browser.wait_for("document.querySelector('#x')", interval=0.005)
                figures["floor"].append(time.perf_counter() - t)

                viewer = Viewer(results)  # a new server: its ledger cache is empty
                try:
                    seconds, render = timed_open(browser, viewer.url + "#/run/bench",
                                                 "document.querySelectorAll('a.cell').length === 60")
                    figures["grid cold"].append(seconds)
                    seconds, render = timed_open(browser, viewer.url + "#/run/bench",
                                                 "document.querySelectorAll('a.cell').length === 60")
                    figures["grid warm"].append(seconds)
                    figures["grid render"].append(render / 1000)
                    seconds, render = timed_open(browser, viewer.url + attempt, "document.querySelector('#code')")
                    figures["attempt"].append(seconds)
                    figures["attempt render"].append(render / 1000)
                finally:
                    viewer.close()
                viewer = Viewer(results)
                try:
                    for key in ("api cold", "api warm"):
                        t = time.perf_counter()
                        fetch(viewer.port, "/api/run/bench")
                        figures[key].append(time.perf_counter() - t)
                finally:
                    viewer.close()
        viewer = Viewer(results)
        try:
            shell = ["/", "/static/app.js", "/static/app.css"]
            grid_sent, grid_raw = page_weight(viewer.port, [*shell, "/api/version?run=bench", "/api/run/bench"])
            query = "label=erm&target=fn_c&length=100&trial=3&attempt=2"
            attempt_sent, attempt_raw = page_weight(viewer.port, [*shell, "/api/version?run=bench",
                                                                  f"/api/run/bench/attempt?{query}"])
            poll_sent, _ = page_weight(viewer.port, ["/api/version?run=bench"])
        finally:
            viewer.close()
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"median of {args.repeat}; a fresh server (empty cache) for every repetition")
    print(f"  grid page, 60 cells / 1 500 rows, cold server : {med['grid cold'] * 1000:7.0f} ms to drawn"
          f"   ({med['grid cold'] / med['ledger']:.1f} x reading the ledger)")
    print(f"  grid page, warm server                        : {med['grid warm'] * 1000:7.0f} ms"
          f"   (page's own fetch + draw {med['grid render'] * 1000:.0f} ms)")
    print(f"  one attempt's page                            : {med['attempt'] * 1000:7.0f} ms"
          f"   (page's own fetch + draw {med['attempt render'] * 1000:.0f} ms)")
    print(f"  /api/run/bench alone, cold / warm server      : {med['api cold'] * 1000:7.0f} / {med['api warm'] * 1000:.0f} ms")
    print(f"  baseline: read the whole ledger (pyarrow)     : {med['ledger'] * 1000:7.0f} ms")
    print(f"  baseline: Chromium draws a trivial page       : {med['floor'] * 1000:7.0f} ms")
    print("page weight, HTML + JS + CSS + JSON (sent gzip / raw):")
    print(f"  grid page    : {grid_sent / 1024:6.1f} KiB / {grid_raw / 1024:6.1f} KiB")
    print(f"  attempt page : {attempt_sent / 1024:6.1f} KiB / {attempt_raw / 1024:6.1f} KiB")
    print(f"  each poll while the page is open (every 1.5 s): {poll_sent} bytes")
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")


if __name__ == "__main__":
    main()

"""`llm-erm view` over real HTTP on 127.0.0.1: access rules, read-only, and what each endpoint says about a run."""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from analysis_helpers import attempt_row, synthetic_run, write_trials
from typer.testing import CliRunner
from viewer_helpers import method_trial_path, multi_method_run, write_method_trial
from waiting import scaled

from llm_erm.analysis import analyze_run
from llm_erm.cli import app
from llm_erm.errors import UsageError
from llm_erm.results import ledger
from llm_erm.viewer import make_server

TOKEN = "correct-horse-battery-staple"


class Served:
    """A viewer serving in a thread; `get` speaks HTTP to it on 127.0.0.1."""

    def __init__(self, results_dir: Path, **options):
        self.server = make_server(results_dir, port=0, **options)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def request(self, path: str, method: str = "GET", headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response, body

    def get(self, path: str, **headers) -> dict:
        response, body = self.request(path, headers=headers or None)
        assert response.status == 200, (path, response.status, body[:300])
        return json.loads(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def results(tmp_path):
    multi_method_run(tmp_path / "results" / "mm", tmp_path / "datasets")
    return tmp_path / "results"


@pytest.fixture
def served(results):
    served = Served(results)
    yield served
    served.close()


# -- access -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org", ""])
def test_a_non_local_bind_without_a_token_is_refused(results, host):
    with pytest.raises(UsageError, match="needs a token: pass --token"):
        make_server(results, host=host, port=0)


def test_the_cli_refuses_a_non_local_bind_in_one_line(results):
    env = {k: v for k, v in os.environ.items() if k != "LLM_ERM_VIEW_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-c", "from llm_erm.cli import main; main()", "view", "--host", "0.0.0.0",
         "--results-dir", str(results), "--port", "0"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: serving on 0.0.0.0 needs a token"), done.stderr
    result = CliRunner().invoke(app, ["view", "--results-dir", str(results / "nope")])
    assert isinstance(result.exception, UsageError) and "no results directory" in str(result.exception)
    result = CliRunner().invoke(app, ["view", "--results-dir", str(results), "--token", "short"])
    assert isinstance(result.exception, UsageError) and "too short" in str(result.exception)


def test_with_a_token_every_request_must_carry_it(results):
    served = Served(results, host="0.0.0.0", token=TOKEN)
    try:
        for path in ("/", "/static/app.js", "/api/runs", "/api/run/mm", "/api/version", "/runs/mm/report/report.html"):
            response, body = served.request(path)
            assert response.status == 403, path
            assert b"token" in body
            response, _ = served.request(path, headers={"Authorization": "Bearer wrong-token-wrong-token"})
            assert response.status == 403, path
        assert served.get("/api/runs", Authorization=f"Bearer {TOKEN}")["runs"][0]["run_id"] == "mm"
        # opening the printed URL: the token moves into a cookie and out of the address
        response, _ = served.request(f"/?token={TOKEN}")
        assert response.status == 303 and response.getheader("Location") == "/"
        cookie = response.getheader("Set-Cookie")
        assert cookie.startswith(f"llm_erm_view_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert served.get("/api/run/mm", Cookie=cookie.split(";")[0])["run_id"] == "mm"
        assert "token=" in served.server.url
    finally:
        served.close()


def test_a_local_server_refuses_foreign_host_headers(served):
    assert served.get("/api/runs", Host=f"localhost:{served.port}")["runs"]
    response, body = served.request("/api/runs", headers={"Host": "attacker.example:80"})
    assert response.status == 403 and b"not a loopback name" in body


def test_the_viewer_is_read_only_and_stays_inside_the_results_directory(served, results):
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    for method in ("POST", "PUT", "DELETE"):
        response, _ = served.request("/api/runs", method=method)
        assert response.status == 405
    for path in ("/api/run/..%2F..%2Fetc", "/api/run/.", "/runs/mm/report/..%2Fmanifest.json",
                 "/static/..%2F..%2Fserver.py", "/runs/mm/report/.hidden", "/nothing"):
        response, _ = served.request(path)
        assert response.status == 404, path
    response, body = served.request("/api/run/mm/cell?label=erm&target=fn_a&length=notanumber")
    assert response.status == 400 and b"bad request" in body
    served.get("/api/run/mm")
    served.get("/api/run/mm/attempt?label=erm&target=fn_a&length=20&trial=1&attempt=1")
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before


def test_pages_carry_a_strict_content_security_policy(served):
    response, body = served.request("/")
    assert response.status == 200 and b'<script src="/static/app.js"' in body
    csp = response.getheader("Content-Security-Policy")
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("style-src")[0]
    assert not [line for line in body.decode().splitlines() if "http://" in line or "https://" in line]
    js, _ = served.request("/static/app.js")
    assert js.getheader("Content-Type").startswith("text/javascript")


# -- what the endpoints say ------------------------------------------------------------------------------------------
def test_the_runs_list_has_state_cost_methods_cells_and_date(served, results):
    synthetic_run(results / "erm-only", results.parent / "datasets-erm")  # no method columns in its rows
    old = results / "old-layout" / "attempts" / "fn_a" / "L20" / "trial1.parquet"  # from before the methods axis
    ledger.write_table(old, ledger.attempts_table([attempt_row("fn_a", 20, 1, 1, 0.8, 0.75)]).drop_columns(
        ["method", "method_label", "n_train", "method_extra", "limit_split"]))
    runs = {r["run_id"]: r for r in served.get("/api/runs")["runs"]}
    mm = runs["mm"]
    assert mm["state"] == "complete"
    assert mm["methods"] == ["erm", "sgd-n1000", "sgd-n200", "xgboost"]
    assert mm["cells"] == 4 and mm["cells_planned"] == 4
    assert mm["cost_usd"] == pytest.approx(0.01 * 4 * 2 * 3)  # erm's attempts only are priced
    assert mm["created_at"] == "2026-01-02T03:04:05+00:00"
    assert mm["prefect_url"] == "http://127.0.0.1:4200/runs/flow-run/0b8f5c1e-1111-2222-3333-444455556666"
    assert runs["erm-only"]["methods"] == ["erm"] and runs["erm-only"]["state"] == "complete"
    assert runs["old-layout"]["methods"] == ["erm"] and runs["old-layout"]["attempts"] == 1
    assert served.get("/api/run/old-layout")["methods"][0]["cells"][0]["test_mean"] == 0.75


def test_the_grid_is_per_method_with_accuracies_and_flags(served, results):
    run_dir = results / "mm"
    # plant: an unpriced answer, a failed call, a truncated answer and a selected candidate that hit a limit on test
    rows = [
        attempt_row("fn_a", 20, 2, 1, 0.9, 0.8, cost_usd=None, method="erm", method_label="erm", code="def f(x): 1"),
        attempt_row("fn_a", 20, 2, 2, None, None, "propose_error", method="erm", method_label="erm",
                    propose_error="429 after 5 retries"),
        attempt_row("fn_a", 20, 2, 3, 0.95, 0.4, "timeout", method="erm", method_label="erm", truncated=True,
                    limit_split="test"),
    ]
    write_method_trial(run_dir, "erm", "fn_a", 20, 2, rows)  # trial 2 of 2, replaced
    grid = served.get("/api/run/mm")
    assert [m["label"] for m in grid["methods"]] == ["erm", "sgd-n1000", "sgd-n200", "xgboost"]
    assert grid["targets"] == ["fn_a", "fn_b"] and grid["lengths"] == [20, 24]
    erm = {(c["target"], c["length"]): c for c in grid["methods"][0]["cells"]}
    planted = erm[("fn_a", 20)]
    assert planted["trials"] == 2
    assert planted["flags"]["unpriced"] == 1 and planted["flags"]["failed_calls"] == 1
    assert planted["flags"]["limit_test"] >= 1 and planted["flags"]["truncated"] >= 1
    assert grid["state"] == "failed"  # a call failed after its retries: a re-run makes it again
    assert grid["totals"]["failed_calls"] == 1 and grid["totals"]["unpriced"] == 1
    # a baseline's cell: the mean of its trials' single rows
    xgb = {(c["target"], c["length"]): c for c in grid["methods"][3]["cells"]}
    tests = [pa.parquet.read_table(method_trial_path(run_dir, "xgboost", "fn_b", 24, t)).column("test_acc")[0].as_py()
             for t in (1, 2)]
    assert xgb[("fn_b", 24)]["test_mean"] == pytest.approx(sum(tests) / 2)
    assert xgb[("fn_b", 24)]["n_train"] == 200 and xgb[("fn_b", 24)]["flags"]["unpriced"] == 0
    assert grid["leakage"]["status"] == "not analysed"


def test_the_leakage_verdict_comes_from_the_analysis(served, results):
    analyze_run(results / "mm")
    leakage = served.get("/api/run/mm")["leakage"]
    assert leakage["status"] == "passed" and leakage["leaks"] == 0 and not leakage["stale"]
    write_method_trial(results / "mm", "erm", "fn_b", 24, 9, [attempt_row("fn_b", 24, 9, 1, 0.5, 0.5)])
    assert served.get("/api/run/mm")["leakage"]["stale"]  # a trial landed after the analysis


def test_a_cell_lists_its_trials_attempts_and_behaviour_groups(served, results):
    cell = served.get("/api/run/mm/cell?label=erm&target=fn_a&length=20")
    assert [t["trial"] for t in cell["trials"]] == [1, 2]
    attempts = cell["trials"][0]["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert sum(a["selected_by_rule"] for a in attempts) == 1
    best = max((a for a in attempts if a["val_acc"] is not None), key=lambda a: a["val_acc"])
    assert best["selected_by_rule"]
    for group in cell["groups"]:  # every member of a group has its signature, and only those
        members = {tuple(m) for m in group["members"]}
        having = {(t["trial"], a["attempt"]) for t in cell["trials"] for a in t["attempts"]
                  if a["signature"] == group["signature"]}
        assert members == having and len(members) >= 2
    assert cell["groups"], "the synthetic run repeats signatures within a cell"
    for key in ("prompt_tokens", "cost_usd", "latency_s", "status", "first_error", "test_acc"):
        assert key in attempts[0]
    assert "prompt" not in attempts[0] and "text" not in attempts[0]  # the heavy columns wait for the attempt page


def test_an_attempt_page_has_prompt_response_code_and_method_details(served):
    cell = served.get("/api/run/mm/cell?label=erm&target=fn_a&length=24")
    trial, attempt = next((t["trial"], a["attempt"]) for t in cell["trials"] for a in t["attempts"]
                          if a["status"] != "syntax_error" and (t["trial"], a["attempt"]) not in ((1, 1), (2, 3)))
    erm = served.get(f"/api/run/mm/attempt?label=erm&target=fn_a&length=24&trial={trial}&attempt={attempt}")
    row = erm["row"]
    assert row["prompt"].startswith("**Problem Statement:**") and "length 24" in row["prompt"]
    assert row["code"] and json.loads(row["text"])["code"] == row["code"]
    order = [(t, a) for t in (1, 2) for a in (1, 2, 3)]
    here = order.index((trial, attempt))
    assert erm["previous"] == list(order[here - 1]) and erm["next"] == list(order[here + 1])
    base = served.get("/api/run/mm/attempt?label=sgd-n1000&target=fn_a&length=24&trial=1&attempt=1")
    extra = base["row"]["method_extra"]
    assert [p["epoch"] for p in extra["curve"]] == [1, 2, 3] and extra["n_params"] == 1234
    assert base["row"]["n_train"] == 1000 and base["row"]["code"] is None
    response, _ = served.request("/api/run/mm/attempt?label=erm&target=fn_a&length=24&trial=7&attempt=1")
    assert response.status == 404


def test_a_running_trial_marks_the_run_running_and_new_files_change_the_version(served, results):
    run_dir = results / "mm"
    version = served.get("/api/version?run=mm")["version"]
    marker = method_trial_path(run_dir, "erm", "fn_b", 24, 3).with_suffix(".running")
    marker.write_text(f"{platform.node()} {os.getpid()}")
    assert served.get("/api/run/mm")["state"] == "running"
    marker.write_text(f"{platform.node()} 999999999")  # its process is gone: not running
    assert served.get("/api/run/mm")["state"] == "complete"
    marker.unlink()
    write_method_trial(run_dir, "erm", "fn_b", 24, 3, [attempt_row("fn_b", 24, 3, 1, 0.7, 0.6)])
    assert served.get("/api/version?run=mm")["version"] != version
    cell = served.get("/api/run/mm/cell?label=erm&target=fn_b&length=24")
    assert [t["trial"] for t in cell["trials"]] == [1, 2, 3]


def test_an_erm_only_run_with_a_manifest_uses_the_cell_statuses(tmp_path):
    run_dir = tmp_path / "results" / "old"
    write_trials(run_dir, [attempt_row("fn_a", 20, 1, 1, 0.8, 0.7), attempt_row("fn_a", 20, 2, 1, 0.6, 0.5)])
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {"cells": [{"target": "fn_a", "length": 20},
                                                                 {"target": "fn_b", "length": 20}],
                                                       "trials_per_cell": 2})
    served = Served(tmp_path / "results")
    try:
        run = served.get("/api/run/old")
        assert run["state"] == "incomplete" and "1 done" in run["state_detail"] and "1 missing" in run["state_detail"]
        ledger.write_json(run_dir / ledger.MANIFEST_FILE, {"cells": [{"target": "fn_a", "length": 20}],
                                                           "trials_per_cell": 2})
        assert served.get("/api/run/old")["state"] == "complete"
    finally:
        served.close()


def test_compare_marks_a_planted_regression_per_method(served, results):
    shutil.copytree(results / "mm", results / "worse")
    worse = results / "worse"
    for trial in (1, 2):
        path = method_trial_path(worse, "erm", "fn_b", 20, trial)
        table = pa.parquet.read_table(path)
        dropped = pa.compute.subtract(table.column("test_acc"), pa.scalar(0.4))
        ledger.write_table(path, table.set_column(table.schema.get_field_index("test_acc"), "test_acc", dropped))
    comparison = served.get("/api/compare?baseline=mm&candidate=worse")
    assert comparison["regressions"] == 1
    erm = comparison["methods"][0]
    assert erm["label"] == "erm"
    marked = [(c["target"], c["length"]) for c in erm["cells"] if c["regression"]]
    assert marked == [("fn_b", 20)]
    cell = next(c for c in erm["cells"] if c["regression"])
    assert cell["regressions"][0]["kind"] == "test_accuracy" and cell["test_delta"] == pytest.approx(-0.4)
    assert all(m["regressions"] == 0 for m in comparison["methods"][1:])
    assert served.get("/api/compare?baseline=mm&candidate=mm")["regressions"] == 0


def test_the_prefect_link_is_only_an_http_url(results):
    from llm_erm.viewer.data import prefect_link

    assert prefect_link({}) is None
    assert prefect_link({"prefect": {"ui_url": "javascript:alert(1)", "flow_run_id": "abc"}}) is None
    assert prefect_link({"prefect": {"ui_url": "http://h:4200/", "flow_run_id": "x/../y"}}) is None
    assert prefect_link({"prefect": {"ui_url": "https://h/ui/", "flow_run_id": "ab-12"}}) == "https://h/ui/runs/flow-run/ab-12"


def test_the_cli_serves_until_interrupted(results):
    import signal
    import urllib.request

    env = {k: v for k, v in os.environ.items() if k != "LLM_ERM_VIEW_TOKEN"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from llm_erm.cli import main; main()", "view", "--results-dir", str(results),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "(read-only) at http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" at ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "api/runs", timeout=scaled(30)) as response:
            assert json.load(response)["runs"][0]["run_id"] == "mm"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=scaled(30)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

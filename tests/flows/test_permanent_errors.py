"""A trial whose calls were all refused is a Failed task run: said once, without a stray `NoneType: None`.

Read from the console of a process of its own, as a user sees it: in this test process Prefect's console
handler holds whichever stderr it first saw, so what it prints depends on the tests that ran before."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import sys
from llm_erm.flows.grid import erm_grid
from llm_erm.wire.server import Fault, WireServer

with WireServer() as server:
    server.inject(*[Fault.http_error(401, "Incorrect API key provided.")] * 4)
    state = erm_grid(functions=["fn_a"], lengths=[20], attempts=2, trials=2, test_size=400, retry_delay_s=0.01,
                     proposer={"kind": "openai-chat", "base_url": server.url}, analyze=False, run_id="perm",
                     results_dir=sys.argv[1] + "/results", datasets_dir=sys.argv[1] + "/datasets",
                     return_state=True)
print("FAILED" if state.is_failed() else "NOT FAILED", state.message)
"""


def test_failed_trials_log_no_empty_traceback(tmp_path, prefect_api):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "OPENAI_API_KEY": "sk-test-flows"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.stdout.startswith("FAILED "), done.stdout + done.stderr
    assert "Re-running will not help until this is fixed: 401 Unauthorized" in done.stdout
    assert "Task run 'trial fn_a L20 t1'" in done.stderr  # the failure is logged ...
    assert "NoneType: None" not in done.stderr  # ... without an empty traceback after it

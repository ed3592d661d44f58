"""Shared pytest fixtures. Each block below belongs to one part of the product; keep them self-contained."""

import os
import tempfile

import pytest

# ---- Prefect: telemetry off and a throwaway PREFECT_HOME, before anything imports Prefect -----------
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="llm-erm-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# ---- end of Prefect block ---------------------------------------------------------------------------

# ---- proposers: the OpenAI wire-protocol test server ----------------------------------------------


@pytest.fixture
def wire_server():
    """A real OpenAI-compatible HTTP server on 127.0.0.1 (ephemeral port), stopped after the test.

    Script it with `wire_server.answer = lambda endpoint, body: Reply(...)`, `wire_server.inject(Fault...)`,
    `wire_server.latency_s`; inspect `wire_server.requests` / `request_count`.
    """
    from llm_erm.wire.server import WireServer

    with WireServer() as server:
        yield server


# ---- end of proposers block ------------------------------------------------------------------------

# ---- datasets: tabular tables never come from the real UCI/OpenML hosts in tests ------------------
# A test that wants the online loader starts its own loopback server and points these at it; the
# default points at the discard port on 127.0.0.1, where nothing listens. The table cache is a
# throwaway directory, never the user's ~/.cache.
os.environ["LLM_ERM_UCI_URL"] = "http://127.0.0.1:9/uci-disabled-in-tests"
os.environ["LLM_ERM_OPENML_URL"] = "http://127.0.0.1:9/openml-disabled-in-tests"
os.environ.setdefault("LLM_ERM_TABLE_CACHE", tempfile.mkdtemp(prefix="llm-erm-tables-"))
# ---- end of datasets block -----------------------------------------------------------------------

# ---- local model: a real llama.cpp server with the bundled Qwen2.5-Coder-0.5B (the local-llm extra) -----
@pytest.fixture(scope="session")
def local_llm(tmp_path_factory):
    """A real OpenAI-compatible server on 127.0.0.1, started once per session: llama.cpp (xllamacpp) with
    the bundled 0.5B model, one thread (stable on a shared machine), 2048 tokens of context, /metrics on.

    `local_llm.base_url` (http://127.0.0.1:<port>/v1), `.model` (the alias to send), `.url` (the server's
    root: /props, /tokenize, /metrics), `.metrics()` (its Prometheus counters). Without the extra installed
    the fixture fails with the install command (it is part of the dev extra)."""
    from llm_erm.local_model import LocalServer, ServerSettings

    log = tmp_path_factory.mktemp("local-llm") / "server.log"
    with LocalServer(ServerSettings(port=0, ctx_size=2048, threads=1, metrics=True), log_path=log) as server:
        yield server


# ---- end of local model block -----------------------------------------------------------------------

"""Shared pytest fixtures. Each block below belongs to one part of the product; keep them self-contained."""

import os
import sys
import tempfile
from pathlib import Path

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

# ---- the fast loop: `pytest -m "not slow"` ---------------------------------------------------------------
# A test is `slow` when it starts a process: a Prefect server, Chromium, the local model, PostgreSQL or any
# child interpreter (a CLI run, a sandbox worker), or trains a model, or takes seconds of CPU. The marks are
# given here, from what a test uses, so test files rarely carry one; the markers are listed in pyproject.toml.
# A test that starts a process without being marked slow fails (the audit hook below says which process and
# how to mark it), so the fast loop stays free of processes as tests are added. CI runs everything.

# Fixtures that start processes, and the system parts they need (besides `slow`).
SLOW_FIXTURES: dict[str, tuple[str, ...]] = {
    "prefect_api": ("prefect_server",),  # tests/flows: prefect_test_harness starts a server
    "local_server": ("prefect_server", "postgres"),  # tests/flows/test_deployment.py
    "local_llm": ("local_model",),
    "browser": ("chromium",),
    "sandbox": ("bwrap",),  # the real sandbox's workers
    "pool": ("bwrap",),
    "isolated": ("bwrap",),
}
# Modules (paths under tests/) whose every test starts a process or trains a model: not even imported
# under -m "not slow".
SLOW_MODULES: dict[str, tuple[str, ...]] = {
    "flows/test_analysis_flows.py": ("prefect_server", "bwrap"),
    "flows/test_deployment.py": ("prefect_server", "postgres", "bwrap"),
    "flows/test_grid.py": ("prefect_server", "bwrap"),
    "test_batch.py": ("bwrap",),
    "test_prefect_env.py": (),  # a Prefect settings resolution in a fresh interpreter per case
    "test_prompt_store.py": ("bwrap",),
    "test_relocate.py": ("bwrap",),
    "test_run_identity.py": ("bwrap",),
    "test_run_settings.py": ("bwrap",),
    "test_storage.py": ("bwrap",),  # a moto S3 server, grids and CLI runs on it
    "test_cli_signals.py": ("prefect_server", "bwrap"),
    "test_engine.py": ("bwrap",),
    "test_local_model.py": ("local_model",),
    "test_methods_finetune.py": (),  # trains a transformer (torch)
    "test_methods_grid.py": ("bwrap",),
    "test_methods_sgd.py": (),  # trains a transformer (torch)
    "test_report_layout.py": ("chromium",),
    "test_report_screenshot.py": ("chromium",),
    "test_verify_hostile.py": ("bwrap",),
    "test_verify_limits.py": ("bwrap",),
    "test_verify_sandbox.py": ("bwrap",),
    "test_viewer_browser.py": ("chromium",),
}
# Single tests of otherwise fast modules: "path under tests/::test name prefix".
SLOW_TESTS: dict[str, tuple[str, ...]] = {
    "test_cli_datasets.py::test_a_user_target_from_the_working_directory": (),  # `llm-erm datasets` runs
    "test_cli_datasets.py::test_readme_form_with_the_console_script": (),
    "test_cli_run.py::test_dry_run_prints_each_distinct_prompt_once": (),  # `llm-erm run` and `status` runs
    "test_cli_run.py::test_a_run_id_that_is_not_a_plain_name": (),
    "test_cli_run.py::test_a_run_folder_linked": (),
    "test_cli_run.py::test_a_labelled_file_with_inputs": (),
    "test_cli_run.py::test_an_unwritable_results": (),
    "test_cli_run.py::test_a_results_dir_that_is_a_file": (),
    "test_cli_run.py::test_a_refused_key": (),
    "test_cli_run.py::test_a_permanent_error_mid_run": ("bwrap",),
    "test_cli_run.py::test_a_config_file_error_names": (),
    "test_plan.py::test_the_dry_runs_calls_per_label": ("bwrap",),
    "test_generalize.py::test_trained_baselines": ("bwrap",),
    "test_cli_run.py::test_run_of_a_complete_grid_prints_its_summary": ("bwrap",),
    "test_cli_run.py::test_run_refuses_bad_input_before_writing_anything": (),
    "test_cli_run.py::test_status_and_export_of_a_ledger": ("bwrap",),
    "test_datasets_official_extra.py::test_poly_is_a_fixed_degree_3_polynomial_independent_of_the_hash": (),
    "test_generalize.py::test_an_enumerated_parity_program_generalises": ("bwrap",),
    "test_generalize.py::test_bad_input_is_one_line": (),
    "test_journal.py::test_answers_of_a_killed_process": (),  # writer processes, one killed
    "test_ledger.py::test_a_marker_left_by_a_dead_process": (),  # a process that has ended, for its pid
    "test_methods_icl.py::test_a_killed_icl_run_resumes": ("bwrap",),
    "test_methods_icl.py::test_methods_share_the_cells_splits": ("bwrap",),
    "test_methods_settings.py::test_broken_install_is_named": (),  # fresh interpreters without the extras
    "test_methods_settings.py::test_missing_baselines_extra_is_named": (),
    "test_methods_settings.py::test_missing_torch_extra_is_named": (),
    "test_providers.py::test_a_grid_runs_through_each_provider": ("bwrap",),
    "test_replay.py::test_cli_": (),  # `llm-erm replay-server` runs
    "test_verify_score.py::test_a_timeout_on_validation_never_runs_test": ("bwrap",),
    "test_verify_score.py::test_cli_": ("bwrap",),  # `llm-erm verify` runs
    "test_verify_score.py::test_programs_with_the_usual_imports_run_in_every_mode": ("bwrap",),
    "test_verify_score.py::test_the_dataset_files_are_out_of_reach": ("bwrap",),
    "test_viewer.py::test_the_cli_": (),  # `llm-erm view` runs
    # No process, but seconds of CPU each: the fast loop keeps a lighter sibling of each.
    "test_analysis_plots.py::test_every_figure_is_legible_at_4_and_at_60_cells[60 cells]": (),
    "test_datasets_tabular.py::test_clean_protocol_is_deterministic_and_invertible[fn_m]": (),  # adult, 48 842 rows
    "test_datasets_tabular.py::test_offline_table_datasets_are_balanced_disjoint_and_labelled_by_the_table[fn_m-": (),
    "test_datasets_tabular.py::test_offline_table_loads_with_no_network[fn_m]": (),
    "test_datasets_tabular.py::test_raw_protocol_shows_the_tables_own_names_and_values[fn_m]": (),
    "test_methods_settings.py::test_every_learner_resolves_its_defaults": (),  # imports torch and transformers
}


TESTS = Path(__file__).parent


def _module(path: Path) -> str:
    return path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else path.name


def _marks_of(path: Path, name: str, fixtures: list[str]) -> set[str]:
    module, marks = _module(path), set()
    if module in SLOW_MODULES:
        marks |= {"slow", *SLOW_MODULES[module]}
    for key, parts in SLOW_TESTS.items():
        file, _, test = key.partition("::")
        if module == file and name.startswith(test):
            marks |= {"slow", *parts}
    for fixture in fixtures:
        if fixture in SLOW_FIXTURES:
            marks |= {"slow", *SLOW_FIXTURES[fixture]}
    return marks


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under a -m expression that leaves a slow module out, do not even import it (torch alone takes
    seconds)."""
    expression, module = config.option.markexpr, _module(collection_path)
    if not expression or module not in SLOW_MODULES:
        return None
    from _pytest.mark.expression import Expression

    marks = {"slow", *SLOW_MODULES[module]}
    return True if not Expression.compile(expression).evaluate(lambda name, **_: name in marks) else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in sorted(_marks_of(item.path, item.name, getattr(item, "fixturenames", []))):
            item.add_marker(mark)


# Audit events of process creation (subprocess, os.fork/posix_spawn/system: multiprocessing included).
_SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.system", "os.spawn"})
_spawned: list[str] = []
_watching = [False]


# Started by the standard library on the way, once per process (platform.uname() runs `uname -p`).
_INCIDENTAL = frozenset({"uname"})


def _audit(event: str, args: tuple) -> None:
    if _watching[0] and event in _SPAWN_EVENTS:
        what = args[1] if event == "subprocess.Popen" and len(args) > 1 else args[:2]
        if isinstance(what, list | tuple) and what and os.path.basename(str(what[0])) in _INCIDENTAL:
            return
        _spawned.append(f"{event} {str(what)[:160]}")


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    _spawned.clear()
    _watching[0] = item.get_closest_marker("slow") is None
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call":
        _watching[0] = False
        if _spawned and report.passed and item.get_closest_marker("slow") is None:
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid} is not marked slow but started a process ({len(_spawned)}: {_spawned[0]}): "
                "add it to SLOW_MODULES / SLOW_TESTS, or the fixture that starts it to SLOW_FIXTURES, in "
                "tests/conftest.py (or mark it @pytest.mark.slow)")
    return report


# ---- end of the fast loop block ------------------------------------------------------------------------

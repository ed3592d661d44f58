"""The sandbox: real worker processes in both modes (bubblewrap, and the rlimit opt-in), real hostile programs.

Every hostile program must be contained with a clear status, leave the host untouched, and leave the next
candidate on the same worker unaffected. The issue-11 attacks (state between candidates, the result
channel, memory pinning, the kernel surface, uids) are in test_verify_hostile.py; time limits in
test_verify_limits.py.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from llm_erm.errors import UsageError
from llm_erm.verify import Sandbox
from llm_erm.verify.sandbox import MODES, STARTUP_S, WALL_EXTRA_S, WALL_FACTOR

HOSTILE = Path(__file__).parent / "hostile"
# A candidate that loops is stopped once its CPU time passes its reserve: about STARTUP_S of CPU, and in
# wall-clock time well within the backstop even on a busy machine.
STOPPED_WITHIN_CPU_S = STARTUP_S + 0.5
STOPPED_WITHIN_S = WALL_EXTRA_S + WALL_FACTOR * STARTUP_S
_rng = random.Random(3)
BITS = ["".join(_rng.choice("01") for _ in range(20)) for _ in range(40)]
PARITY = [x.count("1") % 2 for x in BITS]

# Run after every hostile program on the same worker: fails loudly if anything leaked into it.
CLEAN_PROBE = """
import builtins, json, math, os

def f(x):
    leaks = []
    if len("ab") != 2 or type(1) is not int or not isinstance(1, int):
        leaks.append("builtins replaced")
    if math.pi < 3.14 or json.dumps([1]) != "[1]":
        leaks.append("modules patched")
    if os.listdir("."):
        leaks.append("files left in scratch: %s" % os.listdir("."))
    if leaks:
        raise RuntimeError("; ".join(leaks))
    return x.count("1") % 2
"""


def hostile(name: str, **fill: object) -> str:
    code = (HOSTILE / f"{name}.py").read_text()
    for key, value in fill.items():
        code = code.replace(f"__{key.upper()}__", str(value))
    return code


@pytest.fixture(scope="module", params=MODES)
def sandbox(request):
    """One worker, so the candidate after a hostile one runs on the very same worker slot."""
    with Sandbox(workers=1, mode=request.param) as box:
        yield box


@pytest.fixture(scope="module")
def isolated():
    """A bwrap sandbox, for what only bubblewrap provides (a writable scratch with any uid, a pid
    namespace); refuses (UsageError) where bubblewrap cannot run."""
    with Sandbox(workers=1, mode="bwrap") as box:
        yield box


def assert_next_candidate_unaffected(box: Sandbox) -> None:
    run = box.run(CLEAN_PROBE, BITS)
    assert run.status == "ok", run.first_error
    assert run.outcomes[0].predictions == PARITY


def test_correct_program_with_imports_and_helpers(sandbox) -> None:
    code = "import math\nfrom functools import reduce\nK = 2\n\ndef ones(x):\n    return x.count('1')\n\n" \
           "def f(x):\n    return reduce(lambda a, b: a + b, [ones(x)], 0) % K + 0 * math.floor(0.5)\n"
    run = sandbox.run(code, BITS)
    assert (run.status, run.function, run.sandbox) == ("ok", "f", sandbox.mode)
    assert run.outcomes[0].predictions == PARITY and run.outcomes[0].errors == 0


# ---- the hostile suite --------------------------------------------------------------------------------

EXPECTED = {
    "infinite_loop": {"timeout"},
    "c_loop": {"timeout"},
    "memory_bomb": {"memory"},
    "deep_recursion": {"runtime_errors"},
    "c_stack_overflow": {"crashed"},
    "fork_bomb": {"runtime_errors"},
    "subprocess_call": {"runtime_errors"},
    "os_exit": {"crashed"},
    "sys_exit": {"runtime_errors"},
    "raise_base_exception": {"runtime_errors"},
    "raise_at_load": {"runtime_errors"},
    "flood_result_pipe": {"crashed"},
    "forge_results": {"crashed"},  # anything but the record protocol on its channel ends it
    "lying_objects": {"runtime_errors"},
    "replace_builtins": {"ok"},
    # The seccomp filter lets a candidate signal only itself (PermissionError otherwise).
    "kill_parent": {"runtime_errors"},
    "stop_parent": {"runtime_errors"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_program_is_contained(sandbox, name: str) -> None:
    started = time.monotonic()
    run = sandbox.run(hostile(name), BITS)
    elapsed = time.monotonic() - started
    assert run.status in EXPECTED[name], (run.status, run.first_error)
    assert elapsed < STOPPED_WITHIN_S and run.cpu_s < STOPPED_WITHIN_CPU_S, "the limit was not enforced from outside"
    if run.status != "ok":
        assert run.first_error, "a failing candidate must say why"
    assert "1" not in run.outcomes[0].marks or name == "replace_builtins"
    assert_next_candidate_unaffected(sandbox)


def test_exit_codes_and_signals_are_reported(sandbox) -> None:
    assert "code 3" in sandbox.run(hostile("os_exit"), BITS).first_error
    assert "SIGSEGV" in sandbox.run(hostile("c_stack_overflow"), BITS).first_error
    assert sandbox.run(hostile("raise_at_load"), BITS).first_error.startswith("at load: KeyboardInterrupt")
    lying = sandbox.run(hostile("lying_objects"), BITS)
    assert set(lying.outcomes[0].marks) == {"I"} and "not a 0/1 label" in lying.first_error
    assert sandbox.run(hostile("memory_bomb"), BITS).status == "memory"


def test_fork_and_subprocess_are_refused(sandbox) -> None:
    for name in ("fork_bomb", "subprocess_call"):
        run = sandbox.run(hostile(name), BITS[:3])
        assert run.status == "runtime_errors"
        assert set(run.outcomes[0].marks) == {"E"}
        assert "BlockingIOError" in run.first_error or "ModuleNotFoundError" in run.first_error


def test_killing_everything_it_can_reaches_no_other_process(sandbox) -> None:
    """kill(-1): refused by the seccomp filter (a candidate may signal only itself); besides, as root the
    candidate has a uid no other process has, and in bwrap mode it sees only its own pid namespace."""
    canary = subprocess.Popen(["sleep", "60"])
    nobody_canary = None
    if os.geteuid() == 0 and shutil.which("setpriv"):  # a process of `nobody`, the usual sandbox user
        nobody_canary = subprocess.Popen(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"])
    try:
        run = sandbox.run(hostile("kill_everything"), BITS[:3])
        assert run.status == "runtime_errors" and "PermissionError" in run.first_error, run.first_error
        time.sleep(0.2)
        assert canary.poll() is None, "the candidate killed a process of ours"
        assert nobody_canary is None or nobody_canary.poll() is None, "the candidate killed a process of nobody"
    finally:
        for process in (canary, nobody_canary):
            if process is not None:
                process.kill()
                process.wait()
    assert_next_candidate_unaffected(sandbox)


def test_stdout_and_stderr_floods_are_discarded(sandbox) -> None:
    run = sandbox.run(hostile("flood_output"), BITS[:8])
    assert run.status == "ok", run.first_error
    assert run.outcomes[0].predictions == PARITY[:8]


def test_files_outside_scratch_cannot_be_written_or_deleted(isolated, tmp_path) -> None:
    (tmp_path / "sentinel.txt").write_text("keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    run = isolated.run(hostile("write_files", target_dir=tmp_path), BITS[:3])
    assert run.status == "ok", run.first_error  # writing its own scratch works
    assert run.outcomes[0].marks == "000", "an attack on the host filesystem succeeded"
    assert (tmp_path / "sentinel.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert_next_candidate_unaffected(isolated)  # and its scratch file is gone


def test_nothing_a_candidate_writes_survives_it(isolated) -> None:
    program = hostile("leave_state")
    assert isolated.run(program, ["a"]).outcomes[0].marks == "0"
    again = isolated.run(program, ["a"])
    assert again.status == "ok" and again.outcomes[0].marks == "0", "a file survived to the next candidate"


def test_no_network(sandbox) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        run = sandbox.run(hostile("open_socket", port=server.getsockname()[1]), BITS[:2])
        assert run.status == "ok", run.first_error
        assert run.outcomes[0].marks == "00"
        assert not select.select([server], [], [], 0.2)[0], "the server got a connection"
    finally:
        server.close()


# ---- behaviour of runs --------------------------------------------------------------------------------


def test_rows_answered_before_a_timeout_still_count(sandbox) -> None:
    code = "def f(x):\n    if x == 'stall':\n        while True:\n            pass\n    return 1\n"
    val, test = ["a"] * 50, ["a"] * 1500 + ["stall"] + ["a"] * 100
    # A small allowance per input, so that the chunk of 1000 inputs with the stall is stopped soon.
    with Sandbox(workers=1, time_per_input_s=0.001, mode=sandbox.mode) as box:
        run = box.run_batches(code, [val, test])
    assert (run.status, run.limit_batch) == ("timeout", 1)
    assert run.outcomes[0].marks == "1" * 50
    # Rows are reported in chunks of 1, 10, 100, then 1000: the stall is in the chunk of rows 1111-2110.
    assert run.outcomes[1].marks == "1" * 1111 + "-" * (len(test) - 1111)


def test_a_timeout_on_the_first_batch_means_later_batches_never_run(sandbox) -> None:
    code = "def f(x):\n    while x == 'stall':\n        pass\n    return 1\n"
    run = sandbox.run_batches(code, [["ok", "stall"], ["ok"] * 30])
    assert (run.status, run.limit_batch) == ("timeout", 0)
    assert run.outcomes[0].marks == "1-" and run.outcomes[1].marks == "-" * 30


def test_syntax_error_and_missing_function(sandbox) -> None:
    broken = sandbox.run("def f(x)\n    return 1\n", BITS[:2])
    assert broken.status == "syntax_error" and "SyntaxError" in broken.error
    assert broken.outcomes[0].marks == "--"
    empty = sandbox.run("import math\nX = 1\n", BITS[:2])
    assert empty.status == "no_function" and empty.function is None
    # Decided before the candidate runs: a module that would loop forever at load is not even started.
    looping = sandbox.run("while True:\n    pass\n", BITS[:2])
    assert looping.status == "no_function" and looping.seconds < 1.0


def test_f_is_preferred_else_the_first_top_level_def(sandbox) -> None:
    assert sandbox.run("def g(x):\n    return 0\n\ndef f(x):\n    return 1\n", ["a"]).outcomes[0].marks == "1"
    first = sandbox.run("def solve(x):\n    return 1\n\ndef other(x):\n    return 0\n", ["a"])
    assert (first.function, first.outcomes[0].marks) == ("solve", "1")
    assert sandbox.run("f = lambda x: len(x) % 2\n", ["ab", "abc"]).outcomes[0].marks == "01"


def test_main_guards_do_not_run(sandbox) -> None:
    code = "def f(x):\n    return 1\n\nif __name__ == '__main__':\n    raise SystemExit('ran the main guard')\n"
    assert sandbox.run(code, ["a"]).status == "ok"


def test_inputs_that_are_not_plain_lines_arrive_intact(sandbox) -> None:
    inputs = ["a\nb", "", "tab\there", "ünï", "c"]
    run = sandbox.run("def f(x):\n    return len(x) % 2\n", inputs)
    assert run.outcomes[0].predictions == [len(x) % 2 for x in inputs]
    rows = sandbox.run("def f(x):\n    return x['age'] > 30\n", [{"age": 31}, {"age": 5}])
    assert rows.outcomes[0].marks == "10"


def test_coercion_accepts_exact_types_only(isolated) -> None:
    code = '''
import numpy as np

class Truthy:
    def __bool__(self):
        return True

VALUES = {
    "true": True, "false": False, "five": 5, "zero": 0, "minus": -1, "zero_float": 0.0, "half": 0.5,
    "nan": float("nan"), "s1": " 1 ", "s0": "0", "strue": "True", "sfalse": "FALSE", "s2.5": "2.5", "s0.0": "0.0",
    "sword": "yes", "none": None, "list": [1], "truthy": Truthy(), "np_int": np.int64(3), "np_zero": np.int32(0),
    "np_bool": np.bool_(True), "np_float": np.float32(0.0), "np_array": np.array([1]), "bytes": b"1",
}

def f(x):
    return VALUES[x]
'''
    expected = {
        "true": "1", "false": "0", "five": "1", "zero": "0", "minus": "1", "zero_float": "0", "half": "1",
        "nan": "I", "s1": "1", "s0": "0", "strue": "1", "sfalse": "0", "s2.5": "1", "s0.0": "0",
        "sword": "I", "none": "I", "list": "I", "truthy": "I", "np_int": "1", "np_zero": "0",
        "np_bool": "1", "np_float": "0", "np_array": "I", "bytes": "I",
    }
    run = isolated.run(code, list(expected))
    assert dict(zip(expected, run.outcomes[0].marks, strict=True)) == expected
    assert run.status == "runtime_errors"


def test_parallel_callers_share_a_bounded_pool() -> None:
    loop = hostile("infinite_loop")
    good = "def f(x):\n    return x.count('1') % 2\n"
    results: dict[int, object] = {}
    with Sandbox(workers=2) as box:

        def work(i: int) -> None:
            results[i] = box.run(loop if i % 3 == 0 else good, BITS)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(9)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(results) == 9
    for i, run in results.items():
        if i % 3 == 0:
            assert run.status == "timeout"
        else:
            assert run.status == "ok" and run.outcomes[0].predictions == PARITY


def test_a_worker_that_died_between_candidates_is_replaced(sandbox) -> None:
    assert sandbox.run("def f(x):\n    return 1\n", ["a"]).status == "ok"
    (zygote,) = list(sandbox._live)
    zygote.kill()
    assert sandbox.run("def f(x):\n    return 1\n", ["a"]).status == "ok"


def test_close_stops_every_worker() -> None:
    box = Sandbox(workers=2)
    threads = [threading.Thread(target=box.run, args=("def f(x):\n    return 1\n", ["a"])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    processes = [zygote.process for zygote in box._live]
    assert processes and all(p.poll() is None for p in processes)
    box.close()
    assert all(p.poll() is not None for p in processes)
    with pytest.raises(RuntimeError):
        box.run("def f(x):\n    return 1\n", ["a"])


# ---- modes and refusals --------------------------------------------------------------------------------


def test_mode_is_recorded_and_bwrap_is_the_default() -> None:
    with Sandbox(workers=1, mode="rlimit") as box:
        assert box.mode == "rlimit" and box.run("def f(x):\n    return 1\n", ["a"]).sandbox == "rlimit"
        assert box.fallback_reason == "the rlimit sandbox mode was requested"
        assert box.bounds["mode"] == "rlimit" and box.bounds["landlock_abi"] >= 1
    with Sandbox(workers=1) as box:
        assert (box.mode, box.fallback_reason, box.bounds["mode"]) == ("bwrap", None, "bwrap")
    with Sandbox(workers=1, mode="auto") as box:
        assert box.mode == "bwrap"


def test_the_bounds_in_force_are_described(sandbox) -> None:
    bounds = json.loads(json.dumps(sandbox.bounds))  # JSON-able, for the run's manifest
    assert bounds == sandbox.bounds and bounds["mode"] == sandbox.mode
    assert bounds["time"]["cpu_per_input_s"] == sandbox.time_per_input_s
    assert bounds["memory"]["limit_mb"] == sandbox.memory_mb
    assert bounds["memory"]["address_space_mb"] < sandbox.memory_mb
    assert bounds["seccomp"]["allowed_syscalls"] > 50 and bounds["rlimits"]["nproc"] == 0
    assert set(bounds["namespaces"]["per_candidate"]) == ({"ipc", "mount"} if os.geteuid() == 0 else
                                                          set(bounds["namespaces"]["per_candidate"]))


def test_without_bubblewrap_bwrap_mode_refuses_and_auto_says_why(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap on PATH
    with pytest.raises(UsageError) as refused:
        Sandbox(workers=1)  # the default mode
    message = str(refused.value)
    assert "bubblewrap (bwrap) is not installed" in message and "apt-get install bubblewrap" in message
    assert "--sandbox rlimit" in message and "\n" not in message
    with Sandbox(workers=1, mode="auto") as box:
        assert box.mode == "rlimit"
        assert box.fallback_reason == "bubblewrap (bwrap) is not installed"
        assert box.bounds["fallback_reason"] == box.fallback_reason
        assert box.run("def f(x):\n    return 1\n", ["a"]).status == "ok"


@pytest.mark.parametrize(
    "kwargs, message",
    [({"workers": 0}, "workers"), ({"time_per_input_s": 0}, "timeout"), ({"time_per_input_s": -1}, "timeout"),
     ({"memory_mb": 1}, "memory"), ({"mode": "docker"}, "mode"), ({"mode": None}, "mode")],
)
def test_bad_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        Sandbox(**kwargs)

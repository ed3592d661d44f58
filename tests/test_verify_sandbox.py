"""The sandbox: real worker processes (bubblewrap where it runs, else rlimit), real hostile programs.

Every hostile program must be contained with a clear status, leave the host untouched, and leave the next
candidate on the same worker unaffected. The filesystem, network and environment isolation exists only in
bwrap mode; the rlimit fallback (no bubblewrap) is tested for what it promises: limits and a clean
environment for the candidate, a fresh process per candidate.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llm_erm.errors import UsageError
from llm_erm.verify import Sandbox
from llm_erm.verify.sandbox import GRACE_S, MODES

HOSTILE = Path(__file__).parent / "hostile"
TIMEOUT_S = 1.0
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


@pytest.fixture(scope="module", params=["auto", "rlimit"])
def sandbox(request):
    """One worker, so the candidate after a hostile one runs on the very same worker slot."""
    with Sandbox(workers=1, timeout_s=TIMEOUT_S, mode=None if request.param == "auto" else "rlimit") as box:
        yield box


@pytest.fixture(scope="module")
def isolated():
    """A bwrap sandbox, for the isolation that only bwrap mode provides."""
    box = Sandbox(workers=1, timeout_s=TIMEOUT_S)
    if box.mode != "bwrap":
        box.close()
        pytest.skip(f"filesystem/network/environment isolation needs bwrap mode; here: {box.fallback_reason}")
    with box:
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
    "forge_results": {"timeout"},
    "lying_objects": {"runtime_errors"},
    "replace_builtins": {"ok"},
    # As root the candidate runs as `nobody` and may not signal the worker (PermissionError); as a
    # normal user it can kill or stop its worker, which the pool then replaces.
    "kill_parent": {"runtime_errors", "crashed"},
    "stop_parent": {"runtime_errors", "timeout"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_program_is_contained(sandbox, name: str) -> None:
    started = time.monotonic()
    run = sandbox.run(hostile(name), BITS)
    elapsed = time.monotonic() - started
    assert run.status in EXPECTED[name], (run.status, run.first_error)
    assert elapsed < TIMEOUT_S + GRACE_S + 5, "the time limit was not enforced from outside"
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
    """kill(-1): as root the candidate has a uid no other process has; in bwrap mode it sees only its
    own pid namespace. (As a normal user in rlimit mode it could signal our own processes: not run.)"""
    if sandbox.mode != "bwrap" and os.geteuid() != 0:
        pytest.skip("rlimit mode as a normal user: the candidate shares our uid")
    canary = subprocess.Popen(["sleep", "60"])
    nobody_canary = None
    if os.geteuid() == 0 and shutil.which("setpriv"):  # a process of `nobody`, the usual sandbox user
        nobody_canary = subprocess.Popen(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"])
    try:
        run = sandbox.run(hostile("kill_everything"), BITS[:3])
        assert run.status in {"ok", "crashed"}, run.first_error
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


def test_no_network(isolated) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        run = isolated.run(hostile("open_socket", port=server.getsockname()[1]), BITS[:2])
        assert run.status == "ok", run.first_error
        assert run.outcomes[0].marks == "00"
        assert not select.select([server], [], [], 0.2)[0], "the server got a connection"
    finally:
        server.close()


def test_the_api_key_of_the_orchestrator_is_invisible(tmp_path) -> None:
    """An orchestrator started with OPENAI_API_KEY in its environment (a real process, not a patched
    os.environ), whose candidate searches every environment it can see."""
    secret = "sk-test-" + "".join(random.choice("abcdef0123456789") for _ in range(24))
    script = tmp_path / "orchestrator.py"
    script.write_text(
        "import sys\nfrom llm_erm.verify import Sandbox\n"
        "with Sandbox(workers=1, timeout_s=5) as box:\n"
        "    run = box.run(open(sys.argv[1]).read(), ['x', 'y'])\n"
        "    print(box.mode, run.status, run.outcomes[0].marks, run.first_error)\n"
    )
    program = tmp_path / "candidate.py"
    program.write_text(hostile("read_secret", secret=secret))
    env = {**os.environ, "OPENAI_API_KEY": secret}
    done = subprocess.run([sys.executable, str(script), str(program)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    mode, status, marks = done.stdout.split()[:3]
    if mode != "bwrap":
        pytest.skip("in rlimit mode a same-user candidate could read /proc/<orchestrator>/environ")
    assert (status, marks) == ("ok", "00"), done.stdout


# ---- behaviour of runs --------------------------------------------------------------------------------


def test_rows_answered_before_a_timeout_still_count(sandbox) -> None:
    code = "def f(x):\n    if x == 'stall':\n        while True:\n            pass\n    return 1\n"
    val, test = ["a"] * 50, ["a"] * 1500 + ["stall"] + ["a"] * 100
    run = sandbox.run_batches(code, [val, test])
    assert run.status == "timeout"
    assert run.outcomes[0].marks == "1" * 50
    assert run.outcomes[1].marks.startswith("1" * 1000) and run.outcomes[1].marks.endswith("-" * 101)
    assert len(run.outcomes[1].marks) == len(test)


def test_a_timeout_on_the_first_batch_means_later_batches_never_run(sandbox) -> None:
    code = "def f(x):\n    while x == 'stall':\n        pass\n    return 1\n"
    run = sandbox.run_batches(code, [["ok", "stall"], ["ok"] * 30])
    assert run.status == "timeout"
    assert run.outcomes[0].marks == "--" and run.outcomes[1].marks == "-" * 30


def test_syntax_error_and_missing_function(sandbox) -> None:
    broken = sandbox.run("def f(x)\n    return 1\n", BITS[:2])
    assert broken.status == "syntax_error" and "SyntaxError" in broken.error
    assert broken.outcomes[0].marks == "--"
    empty = sandbox.run("import math\nX = 1\n", BITS[:2])
    assert empty.status == "no_function" and empty.function is None


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
    with Sandbox(workers=2, timeout_s=TIMEOUT_S) as box:

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
    box = Sandbox(workers=2, timeout_s=TIMEOUT_S)
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


def test_mode_is_recorded_and_bwrap_is_used_where_it_runs() -> None:
    with Sandbox(workers=1, mode="rlimit") as box:
        assert box.mode == "rlimit" and box.run("def f(x):\n    return 1\n", ["a"]).sandbox == "rlimit"
    with Sandbox(workers=1) as box:
        assert box.mode in MODES
        if shutil.which("bwrap"):
            assert box.mode == "bwrap" or box.fallback_reason.startswith("bubblewrap cannot run here")


def test_without_bubblewrap_the_fallback_says_why(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap on PATH
    with Sandbox(workers=1) as box:
        assert box.mode == "rlimit"
        assert box.fallback_reason == "bubblewrap (bwrap) is not installed"
        assert box.run("def f(x):\n    return 1\n", ["a"]).status == "ok"
    with pytest.raises(UsageError, match="bubblewrap"):
        Sandbox(workers=1, mode="bwrap")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"workers": 0}, "workers"), ({"timeout_s": 0}, "timeout"), ({"memory_mb": 1}, "memory"),
     ({"mode": "docker"}, "mode")],
)
def test_bad_settings_are_refused(kwargs, message) -> None:
    with pytest.raises(UsageError, match=message):
        Sandbox(**kwargs)

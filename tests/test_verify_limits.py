"""Time and memory limits that do not change the science (issue 10, item 2): a CPU allowance per input,
measured by the sandbox from outside the candidate, so a correct program is never stopped because the
machine is busy, while a loop, a sleeper or a memory hog is stopped and the split where it stopped is
recorded (`limit_split`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.verify import Sandbox, verify_candidate
from llm_erm.verify.sandbox import IDLE_FACTOR, STARTUP_S, WALL_EXTRA_S

PROGRAMS = Path(__file__).parent / "programs"
PARITY = "def f(x):\n    return x.count('1') % 2\n"


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=1) as box:
        yield box


def busy_loops(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"]) for _ in range(count)]


def test_a_correct_primality_program_scores_perfectly_on_a_busy_machine(datasets_dir) -> None:
    """fn_i at L = 100 (100-digit numbers, Miller-Rabin: about 1.2 ms of CPU per input here) with a busy
    loop on every core: the candidate's wall clock stretches, its CPU time does not."""
    data = build_dataset(DatasetSpec("fn_i", 100, test_size=2000), datasets_dir)
    loops = busy_loops(os.cpu_count() or 1)
    try:
        time.sleep(0.2)  # the loops are running
        with Sandbox(workers=1) as box:
            result = verify_candidate((PROGRAMS / "fn_i.py").read_text(), data, box)
        assert all(loop.poll() is None for loop in loops), "the machine was not busy the whole time"
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.test_acc, result.limit_split) == (1.0, 1.0, None)


def test_the_limit_grows_with_the_number_of_inputs(datasets_dir) -> None:
    """1 ms of CPU per input against an allowance of 4 ms per input: 1 200 inputs (1.2 s of CPU in all,
    more than the start-up reserve and any one chunk's allowance) all count."""
    data = build_dataset(DatasetSpec("fn_a", 30, test_size=1000), datasets_dir)
    code = ("import time\n\ndef f(x):\n    end = time.process_time() + 0.001\n    while time.process_time() < end:\n"
            "        pass\n    return x.count('1') % 2\n")
    with Sandbox(workers=1, time_per_input_s=0.004) as box:
        result = verify_candidate(code, data, box)
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.test_acc) == (1.0, 1.0)


def test_a_loop_on_the_first_input_is_stopped_after_the_start_up_allowance(datasets_dir, sandbox) -> None:
    """Stopped on CPU time, not wall-clock time: after the reserve (less what loading used) plus one
    input's allowance, however busy the machine is."""
    data = build_dataset(DatasetSpec("fn_a", 20), datasets_dir)
    loop = "def f(x):\n    while True:\n        pass\n"
    result = verify_candidate(loop, data, sandbox)
    assert (result.status, result.limit_split) == ("timeout", "val")
    assert result.val_acc == result.test_acc == 0.0 and result.test_errors == len(data.split("test").inputs)
    assert "CPU" in result.first_error
    run = sandbox.run(loop, data.split("val").inputs)  # the same, with the CPU time it used
    assert run.status == "timeout" and STARTUP_S - 0.1 <= run.cpu_s < STARTUP_S + 0.3, run.cpu_s


def test_the_split_where_a_limit_stopped_the_candidate_is_recorded(datasets_dir, sandbox) -> None:
    data = build_dataset(DatasetSpec("fn_a", 20), datasets_dir)
    test_inputs = data.split("test").inputs
    on_test = f"STALL = {test_inputs[5]!r}\n\ndef f(x):\n    while x == STALL:\n        pass\n    return x.count('1') % 2\n"
    result = verify_candidate(on_test, data, sandbox)
    assert (result.status, result.limit_split, result.val_acc, result.train_acc) == ("timeout", "test", 1.0, 1.0)
    assert result.test_acc < 0.01  # only the first chunk of the test split (one input) was reported
    hog = f"TRAIN = {set(data.split('train').inputs)!r}\n\ndef f(x):\n    if x in TRAIN:\n" \
          "        return len(bytearray(2 ** 40))\n    return x.count('1') % 2\n"
    memory = verify_candidate(hog, data, sandbox)
    assert (memory.status, memory.limit_split, memory.val_acc, memory.train_acc) == ("memory", "train", 1.0, 0.0)
    fine = verify_candidate(PARITY, data, sandbox)
    assert (fine.status, fine.limit_split) == ("ok", None)


def test_a_sleeping_candidate_is_stopped_within_its_time_off_the_cpu(datasets_dir) -> None:
    """Time asleep is bounded over the whole run by IDLE_FACTOR x the CPU allowance + WALL_EXTRA_S (wall time
    less queueing <= 2 x allowance + 2 s), and the split where it stopped is recorded."""
    data = build_dataset(DatasetSpec("fn_a", 20), datasets_dir)
    rows = sum(len(data.split(name).inputs) for name in ("train", "val", "test"))
    code = "import time\n\ndef f(x):\n    time.sleep(3600)\n"
    with Sandbox(workers=1, time_per_input_s=0.01) as box:
        started = time.monotonic()
        result = verify_candidate(code, data, box)
        elapsed = time.monotonic() - started
    off_cpu = IDLE_FACTOR * (STARTUP_S + 0.01 * rows) + WALL_EXTRA_S
    assert (result.status, result.limit_split) == ("timeout", "val")
    assert off_cpu - 0.5 < elapsed < off_cpu + 3, elapsed
    assert "asleep" in result.first_error


def test_a_lazy_import_on_the_first_call_fits_the_start_up_allowance(datasets_dir, sandbox) -> None:
    """`import sympy` inside f costs a few tenths of a second on the first call only."""
    data = build_dataset(DatasetSpec("fn_i", 20, test_size=400), datasets_dir)
    code = "def f(x):\n    import sympy\n    return int(sympy.isprime(int(x)))\n"
    result = verify_candidate(code, data, sandbox)
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.test_acc) == (1.0, 1.0)


def test_a_one_off_cost_later_in_the_run_is_paid_from_the_reserve(datasets_dir, sandbox) -> None:
    """0.6 s of CPU on the first call (a lazy import, a cache being built) and again on the first call of
    the train split (a garbage collection), each a chunk of its own (allowance 0.01 s): the reserve pays
    for the first, and, refilled by what the fast validation chunks left, for the second."""
    data = build_dataset(DatasetSpec("fn_a", 20), datasets_dir)
    code = ("import time\ncalls = []\n\ndef f(x):\n    calls.append(x)\n    if len(calls) in (1, 101):\n"
            "        end = time.process_time() + 0.6\n        while time.process_time() < end:\n            pass\n"
            "    return x.count('1') % 2\n")
    result = verify_candidate(code, data, sandbox)
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.train_acc, result.test_acc) == (1.0, 1.0, 1.0)


def test_a_slow_program_is_stopped_in_proportion(datasets_dir) -> None:
    """0.2 s of CPU per input against 0.01 s per input: it passes the one-input chunk (the start-up
    allowance) and is stopped in the next."""
    data = build_dataset(DatasetSpec("fn_a", 20), datasets_dir)
    code = ("import time\n\ndef f(x):\n    end = time.process_time() + 0.2\n    while time.process_time() < end:\n"
            "        pass\n    return x.count('1') % 2\n")
    with Sandbox(workers=1, time_per_input_s=0.01) as box:
        result = verify_candidate(code, data, box)
        run = box.run(code, data.split("val").inputs)
    assert (result.status, result.limit_split) == ("timeout", "val")
    assert result.val_acc == 0.01  # the first input only
    # 0.2 s for the first input, then the reserve left plus 10 x 0.01 s for the chunk of ten
    assert run.status == "timeout" and run.cpu_s < STARTUP_S + 0.5, run.cpu_s

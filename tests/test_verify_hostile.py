"""Hostile candidates through the grid path (issue 11): one long-lived Sandbox pool shared by consecutive
verify_candidate calls on a real dataset, exactly as the grid engine uses it.

Every hostile candidate is followed on the same pool by an honest candidate that must score 1.0 (and not
be slowed), and every "writer" that leaves state for later candidates is followed by a "reader" that
answers only from what it can find of the writer: it must stay at chance (exactly 0.5 on the balanced
splits, since it answers 0 when it finds nothing). The hostile programs themselves (tests/hostile/) are
honest parity programs apart from their attack, and turn their answers wrong when the attack worked, so
a score of 1.0 means "contained".

Pools: bubblewrap with one worker (the next candidate runs on the very worker the hostile one used) and
with two workers (candidates submitted from two threads at once), and the rlimit mode with one worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from llm_erm.datasets import DatasetSpec, build_dataset
from llm_erm.verify import Sandbox, verify_candidate
from llm_erm.verify.sandbox import UID_BLOCK, interpret

HOSTILE = Path(__file__).parent / "hostile"
PROGRAMS = Path(__file__).parent / "programs"
REPO = Path(__file__).resolve().parent.parent
HONEST = "def f(x):\n    return x.count('1') % 2\n"
MEMORY_MB = 512
STASH_MECHANISMS = ("sysv_shm", "sysv_msg", "sysv_sem", "posix_mq", "posix_shm", "keyring_session",
                    "keyring_user", "keyring_persistent", "files")
CHANNEL_ATTACKS = ("brackets", "nested_json", "huge_length", "forge_failure", "forge_load_error", "forge_done",
                   "binary", "half_record", "close")
PIN_MECHANISMS = ("sysv_shm", "memfd", "userns_tmpfs", "shared_anonymous", "locked", "pipes", "threads",
                  "inotify", "posix_timers")
HONEST_SECONDS = 5.0  # an honest candidate on 400 rows takes milliseconds; a slowed one would show


def hostile(name: str, **fill: object) -> str:
    code = (HOSTILE / f"{name}.py").read_text()
    for key, value in fill.items():
        code = code.replace(f"__{key.upper()}__", str(value))
    assert "__" + "ROLE" not in code and "__MECHANISM__" not in code and "__ATTACK__" not in code
    return code


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return build_dataset(DatasetSpec("fn_a", 20, test_size=200), tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="module", params=[("bwrap", 1), ("bwrap", 2), ("rlimit", 1)], ids=lambda p: f"{p[0]}-{p[1]}")
def pool(request):
    mode, workers = request.param
    with Sandbox(workers=workers, memory_mb=MEMORY_MB, mode=mode) as box:
        yield box


def run_sequence(pool: Sandbox, dataset, codes: list[str]) -> list:
    """Consecutive verify_candidate calls; with a 2-worker pool, two such sequences run at once (from
    two threads, as the grid's task runner does), so both workers serve hostile and honest candidates."""
    if pool.workers == 1:
        return [verify_candidate(code, dataset, pool, is_code=True) for code in codes]
    results: dict[int, list] = {}

    def work(lane: int) -> None:
        results[lane] = [verify_candidate(code, dataset, pool, is_code=True) for code in codes]

    threads = [threading.Thread(target=work, args=(lane,)) for lane in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert set(results) == {0, 1}
    return [r for pair in zip(results[0], results[1], strict=True) for r in pair]


def assert_honest(result) -> None:
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.train_acc, result.test_acc) == (1.0, 1.0, 1.0)


def assert_contained(result, statuses=("ok",)) -> None:
    """The hostile program's own verdict: the expected status, and when it ran, its attack never worked
    (it answers parity only while its attack fails)."""
    assert result.status in statuses, (result.status, result.first_error)
    if result.status == "ok":
        assert (result.val_acc, result.test_acc) == (1.0, 1.0), result.first_error


def assert_chance(result) -> None:
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.train_acc, result.test_acc) == (0.5, 0.5, 0.5), "it read an earlier candidate's answers"


# ---- state crossing candidates ---------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", STASH_MECHANISMS)
def test_what_a_candidate_stashes_never_reaches_the_next(pool, dataset, mechanism) -> None:
    writer = hostile("stash", role="write", mechanism=mechanism)
    reader = hostile("stash", role="read", mechanism=mechanism)
    results = run_sequence(pool, dataset, [writer, reader, HONEST])
    per_lane = 2 if pool.workers == 2 else 1
    for i, result in enumerate(results):
        step = i // per_lane
        (assert_honest if step != 1 else assert_chance)(result)


def test_no_byte_of_an_earlier_request_or_reply_is_in_a_candidates_memory(pool, dataset) -> None:
    """The writer's source carries a token; the reader scans all of its own memory for that token (by
    hash, so it does not carry the token itself) and for the marks of an earlier reply. It must find its
    own token: that shows the scan sees the memory it inherited."""
    writer_token, reader_token = secrets.token_hex(32), secrets.token_hex(32)
    writer = f"TOKEN = 'TOKEN-ANCHOR-5b1c:{writer_token}'\n\n" + HONEST
    reader = hostile("scan_memory", own_token=reader_token,
                     own_digest=hashlib.sha256(reader_token.encode()).hexdigest(),
                     writer_digest=hashlib.sha256(writer_token.encode()).hexdigest())
    results = run_sequence(pool, dataset, [writer, writer, reader, HONEST])
    per_lane = 2 if pool.workers == 2 else 1
    for i, result in enumerate(results):
        (assert_chance if i // per_lane == 2 else assert_honest)(result)


# ---- one candidate cannot fail or slow the next -------------------------------------------------------


@pytest.mark.parametrize("name", ["deep_tree", "many_inodes", "fill_scratch"])
def test_what_a_candidate_leaves_in_its_scratch_costs_the_next_nothing(pool, dataset, name) -> None:
    results = run_sequence(pool, dataset, [hostile(name), HONEST, HONEST])
    per_lane = 2 if pool.workers == 2 else 1
    assert_contained(results[0])
    for result in results[per_lane:]:
        assert_honest(result)


def test_an_honest_candidate_after_a_scratch_attack_is_not_slowed(pool, dataset) -> None:
    verify_candidate(hostile("many_inodes"), dataset, pool, is_code=True)
    started = time.monotonic()
    assert_honest(verify_candidate(HONEST, dataset, pool, is_code=True))
    assert time.monotonic() - started < HONEST_SECONDS


# ---- the orchestrator is untouchable -------------------------------------------------------------------


@pytest.mark.parametrize("attack", CHANNEL_ATTACKS)
def test_any_bytes_on_the_result_channel_end_only_that_candidate(pool, dataset, attack) -> None:
    results = run_sequence(pool, dataset, [hostile("channel_garbage", attack=attack), HONEST])
    per_lane = 2 if pool.workers == 2 else 1
    for result in results[:per_lane]:
        assert result.status == "crashed", (result.status, result.first_error)
        assert result.val_acc < 1.0  # rows after the attack never count
    for result in results[per_lane:]:
        assert_honest(result)


def test_a_candidate_cannot_choose_its_status(pool, dataset) -> None:
    """Statuses come from trusted facts: a forged load error or lockdown failure on the channel makes
    it crashed (not runtime_errors, not a sandbox error), and a correct program with text that looks
    like a syntax error in a string is ok."""
    forged = verify_candidate(hostile("channel_garbage", attack="forge_load_error"), dataset, pool, is_code=True)
    assert forged.status == "crashed"
    failure = verify_candidate(hostile("channel_garbage", attack="forge_failure"), dataset, pool, is_code=True)
    assert failure.status == "crashed"
    looks_broken = "MESSAGE = 'SyntaxError: invalid syntax'\n\n" + HONEST
    assert_honest(verify_candidate(looks_broken, dataset, pool, is_code=True))


def test_replies_the_orchestrator_cannot_read_never_raise() -> None:
    deep = json.loads("[" * 900 + "]" * 900)
    for reply in (None, 5, "x", [], {"outcome": "finished"}, {"outcome": "finished", "marks": deep, "errors": []},
                  {"outcome": "finished", "marks": ["01"], "errors": [None]},
                  {"outcome": "finished", "marks": ["0x"], "errors": [None]},
                  {"outcome": "timeout", "marks": [5], "errors": [None]}, {"outcome": {"a": deep}}):
        execution = interpret(reply, [3], "bwrap")
        assert execution.status == "crashed" and execution.outcomes[0].marks == "---"


# ---- host resources -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", PIN_MECHANISMS)
def test_memory_outside_the_address_space_is_bounded(pool, dataset, mechanism) -> None:
    code = hostile("pin_memory", mechanism=mechanism, cap_mb=MEMORY_MB)
    results = run_sequence(pool, dataset, [code, HONEST])
    per_lane = 2 if pool.workers == 2 else 1
    for result in results[:per_lane]:
        assert_contained(result, ("ok", "memory"))
    for result in results[per_lane:]:
        assert_honest(result)


def test_the_kernel_surface_a_pure_function_never_needs_is_refused(pool, dataset) -> None:
    result = verify_candidate(hostile("kernel_surface"), dataset, pool, is_code=True)
    assert_contained(result)
    assert_honest(verify_candidate(HONEST, dataset, pool, is_code=True))


# ---- uids ------------------------------------------------------------------------------------------------


def candidate_uid(box: Sandbox) -> int:
    run = box.run(hostile("report_uid"), [str(bit) for bit in range(32)])
    assert run.status == "ok", run.first_error
    return sum(int(mark) << bit for bit, mark in enumerate(run.outcomes[0].marks))


@pytest.mark.skipif(os.geteuid() != 0, reason="candidates get uids of their own only when we are root")
def test_every_candidate_gets_a_uid_no_other_orchestrator_hands_out(tmp_path) -> None:
    script = tmp_path / "orchestrator.py"
    script.write_text(
        "import json, sys, time\nfrom llm_erm.verify import Sandbox\n"
        "code = open(sys.argv[1]).read()\n"
        "with Sandbox(workers=1) as box:\n"
        "    print(json.dumps(box.bounds['candidate_uid']['range']), flush=True)\n"
        "    uids = []\n"
        "    for _ in range(3):\n"
        "        run = box.run(code, [str(b) for b in range(32)])\n"
        "        uids.append(sum(int(m) << b for b, m in enumerate(run.outcomes[0].marks)))\n"
        "    print(json.dumps(uids), flush=True)\n"
        "    sys.stdin.readline()\n"  # hold the block until the other orchestrator has started
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    program = HOSTILE / "report_uid.py"
    runs = [subprocess.Popen([sys.executable, str(script), str(program)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    try:
        reports = [(json.loads(r.stdout.readline()), json.loads(r.stdout.readline())) for r in runs]
    finally:
        for r in runs:
            r.communicate("\n", timeout=60)
    (range_a, uids_a), (range_b, uids_b) = reports
    assert range_a != range_b and range_a[1] - range_a[0] + 1 == UID_BLOCK
    assert all(range_a[0] <= u <= range_a[1] for u in uids_a) and all(range_b[0] <= u <= range_b[1] for u in uids_b)
    assert len(set(uids_a)) == 3 and not set(uids_a) & set(uids_b)
    with Sandbox(workers=1) as box:  # and in one process, each candidate its own
        assert candidate_uid(box) != candidate_uid(box)


# ---- rlimit mode keeps the host's files and the orchestrator's secrets out of reach ----------------------


def secret_paths(dataset) -> list[str]:
    return [str(REPO / "llm_erm" / "datasets" / "targets.py"), str(REPO / "llm_erm"), str(dataset.path / "test.txt"),
            str(dataset.path), "/etc/passwd", "/tmp", f"/proc/{os.getpid()}/environ",
            f"/proc/{os.getppid()}/cmdline"]


def test_the_host_files_are_out_of_reach(pool, dataset) -> None:
    paths = [p for p in secret_paths(dataset) if os.path.exists(p)]
    assert str(REPO / "llm_erm" / "datasets" / "targets.py") in paths
    result = verify_candidate(hostile("read_checkout", paths=repr(paths)), dataset, pool, is_code=True)
    assert_contained(result)


@pytest.mark.parametrize("mode", ["bwrap", "rlimit"])
def test_the_api_key_is_invisible_in_every_mode(tmp_path, mode) -> None:
    """A real orchestrator process with OPENAI_API_KEY in its environment; its candidate searches every
    environment and command line it can see."""
    secret = "sk-test-" + secrets.token_hex(12)
    script = tmp_path / "orchestrator.py"
    script.write_text(
        "import sys\nfrom llm_erm.verify import Sandbox\n"
        f"with Sandbox(workers=1, mode={mode!r}) as box:\n"
        "    run = box.run(open(sys.argv[1]).read(), ['x', 'y'])\n"
        "    print(box.mode, run.status, run.outcomes[0].marks, run.first_error)\n"
    )
    program = tmp_path / "candidate.py"
    program.write_text(hostile("read_secret", secret=secret))
    env = {**os.environ, "OPENAI_API_KEY": secret, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), str(program)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    mode_seen, status, marks = done.stdout.split()[:3]
    assert mode_seen == mode
    assert status in ("ok", "runtime_errors") and "1" not in marks, done.stdout


NON_ROOT_ORCHESTRATOR = '''
import json, os, sys
from llm_erm.verify import Sandbox
probe = open(sys.argv[1]).read()
results = {}
for mode in ("bwrap", "rlimit"):
    with Sandbox(workers=1, mode=mode) as box:
        secret = box.run(probe, ["x", "y"])
        kill = box.run("import os, signal\\ndef f(x):\\n    os.kill(%d, signal.SIGKILL)\\n    return 1\\n" % os.getpid(), ["x"])
        leave = "def f(x):\\n    for p in ('left', '/tmp/left', '/dev/shm/left'):\\n        try:\\n            open(p, 'w').write(x)\\n" \\
                "        except OSError:\\n            pass\\n    return 0\\n"
        find = "import os\\ndef f(x):\\n    return int(any(os.path.exists(p) for p in ('left', '/tmp/left', '/dev/shm/left')))\\n"
        box.run(leave, ["x"])
        stash = box.run(find, ["x", "y"])
        results[mode] = {"mode": box.mode, "per_candidate": box.bounds["namespaces"]["per_candidate"],
                         "secret": [secret.status, secret.outcomes[0].marks], "kill": kill.status,
                         "stash": stash.outcomes[0].marks}
print(json.dumps(results))
'''


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists("/usr/bin/python3"),
                    reason="runs an orchestrator as the user nobody (needs root to switch, setpriv, /usr/bin/python3)")
def test_a_non_root_orchestrator_keeps_its_key_and_its_life_in_both_modes() -> None:
    """As a normal user candidates share the orchestrator's uid: the key in its environment, its process
    and its files must still be out of reach (Landlock and seccomp; bubblewrap's user namespace)."""
    secret = "sk-nonroot-" + secrets.token_hex(8)
    directory = tempfile.mkdtemp(prefix="llm-erm-nonroot-")
    try:
        # nobody imports llm_erm from a copy: the checkout may sit in a directory only its owner can enter
        shutil.copytree(REPO / "llm_erm", Path(directory) / "llm_erm", ignore=shutil.ignore_patterns("__pycache__"))
        script, probe = Path(directory) / "orchestrator.py", Path(directory) / "probe.py"
        script.write_text(NON_ROOT_ORCHESTRATOR)
        probe.write_text(hostile("read_secret", secret=secret))
        for root, _, files in os.walk(directory):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", str(script), str(probe)],
            env={"PATH": "/usr/bin:/bin", "HOME": directory, "OPENAI_API_KEY": secret, "PYTHONPATH": directory},
            cwd=directory, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for mode, seen in results.items():
        assert seen["mode"] == mode
        assert "1" not in seen["secret"][1], (mode, seen)
        assert seen["kill"] == "runtime_errors", (mode, seen)  # PermissionError: it signals only itself
        assert seen["stash"] == "00", (mode, seen)
    assert results["bwrap"]["per_candidate"] == ["ipc", "mount"]


# ---- issue 20: the orchestrator's own handling of answers -------------------------------------------------


def test_a_lone_surrogate_answer_is_journaled_scored_and_never_bought_twice(tmp_path) -> None:
    """A correct answer whose comment holds a lone surrogate (U+D83D), from an OpenAI-compatible server
    through run_grid: journaled exactly, scored 1.0, and a resume (and a replay) buys nothing again."""
    from llm_erm import GridConfig, run_grid
    from llm_erm.results import ledger
    from llm_erm.results.journal import JOURNAL_DIR, read_records
    from llm_erm.wire.server import Reply, WireServer

    answer = "```python\n# counts the ones \ud83d\ndef f(x):\n    return x.count('1') % 2\n```\n"
    sold = []

    def model(endpoint: str, body: dict) -> Reply:
        sold.append(body.get("seed"))
        return Reply(answer, prompt_tokens=100, completion_tokens=50)

    def config(run_id: str, proposer: dict) -> dict:
        return {"functions": ["fn_a"], "lengths": [20], "attempts": 1, "trials": 1, "test_size": 200,
                "proposer": proposer, "concurrency": 1, "verify_workers": 1, "analyze": False, "run_id": run_id,
                "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets")}

    with WireServer(model) as server:
        wire = {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 10}
        assert run_grid(GridConfig(**config("s", wire))).ok
        assert run_grid(GridConfig(**config("s", wire))).ok  # the resume
    assert len(sold) == 1, "the answer was bought again"
    run_dir = tmp_path / "results" / "s"
    records = [r for path in (run_dir / JOURNAL_DIR).glob("*.jsonl") for r in read_records(path)[0]]
    assert [r["text"] for r in records if r.get("kind") == "answer"] == [answer]
    (row,) = ledger.read_attempts(run_dir).to_pylist()
    assert row["status"] == "ok" and (row["val_acc"], row["test_acc"]) == (1.0, 1.0), row["first_error"]
    assert "\\ud83d" in row["text"]  # the ledger's UTF-8 view escapes it; the journal keeps it
    replay = {"kind": "replay", "replay_from": str(run_dir)}
    assert run_grid(GridConfig(**config("r", replay))).ok
    (replayed,) = ledger.read_attempts(tmp_path / "results" / "r").to_pylist()
    assert replayed["status"] == "ok" and replayed["test_acc"] == 1.0


def test_an_answer_over_the_size_bound_is_too_large_before_any_parsing(pool, dataset) -> None:
    from llm_erm.verify.extract import MAX_ANSWER_CHARS

    for size in (300_000, 1_000_000):
        text = "```python\n" + HONEST + "# " + "x" * size + "\n```\n"
        started = time.process_time()
        result = verify_candidate(text, dataset, pool)
        assert time.process_time() - started < 0.1
        assert result.status == "too_large" and result.val_acc is None and str(MAX_ANSWER_CHARS) in result.first_error
    assert_honest(verify_candidate(HONEST, dataset, pool, is_code=True))


def test_a_function_name_of_100_000_characters_is_not_a_crash(pool, dataset) -> None:
    name = "f" + "x" * 99_999
    code = f"def {name}(x):\n    return x.count('1') % 2\n"
    assert_honest(verify_candidate(code, dataset, pool, is_code=True))


# ---- issue 20: no state through the host's page cache ---------------------------------------------------


@pytest.mark.parametrize("mechanism", ["fadvise", "mincore"])
def test_the_page_cache_carries_nothing_to_a_later_candidate(pool, dataset, mechanism) -> None:
    """The writer marks one page of a large library per input (resident = 1), an unrelated honest candidate
    runs, then a reader that computes nothing asks which pages are resident: it stays at chance."""
    writer = hostile("page_cache", role="write", mechanism=mechanism)
    reader = hostile("page_cache", role="read", mechanism=mechanism)
    results = run_sequence(pool, dataset, [writer, HONEST, reader, HONEST])
    per_lane = 2 if pool.workers == 2 else 1
    for i, result in enumerate(results):
        (assert_chance if i // per_lane == 2 else assert_honest)(result)


@pytest.mark.parametrize("mechanism", ["fadvise", "mincore"])
def test_the_page_cache_carries_nothing_across_two_pools(dataset, mechanism) -> None:
    """Writer on one orchestrator's pool, reader on another's (another uid block, another mode)."""
    writer = hostile("page_cache", role="write", mechanism=mechanism)
    reader = hostile("page_cache", role="read", mechanism=mechanism)
    with Sandbox(workers=1, memory_mb=MEMORY_MB, mode="bwrap") as first, \
            Sandbox(workers=1, memory_mb=MEMORY_MB, mode="rlimit") as second:
        assert_honest(verify_candidate(writer, dataset, first, is_code=True))
        assert_honest(verify_candidate(HONEST, dataset, first, is_code=True))
        assert_chance(verify_candidate(reader, dataset, second, is_code=True))
        assert_honest(verify_candidate(HONEST, dataset, second, is_code=True))


# ---- issue 20: wall time bounded by the candidate's own budget ------------------------------------------


STALLS = ("sleep", "select", "futex", "pause", "sigstop", "sleep_per_input")
STALL_PER_INPUT_S = 0.002


@pytest.mark.parametrize("mode", ["bwrap", "rlimit"])
def test_stalling_candidates_time_out_within_their_bound_at_concurrency_16(dataset, mode) -> None:
    """12 stalling candidates (two of each kind) and 4 honest ones verified at once from 16 threads on 16
    workers: every staller is a timeout within 2 x its CPU allowance + 2 s (plus a little for the machine),
    and the honest ones finish in about their honest time."""
    from llm_erm.verify.sandbox import IDLE_FACTOR, STARTUP_S, WALL_EXTRA_S

    rows = sum(len(dataset.split(name).inputs) for name in ("train", "val", "test"))
    allowance = STARTUP_S + STALL_PER_INPUT_S * rows
    bound = (1 + IDLE_FACTOR) * allowance + WALL_EXTRA_S
    codes = [hostile("stall", mechanism=m) for m in STALLS for _ in range(2)] + [HONEST] * 4
    with Sandbox(workers=16, time_per_input_s=STALL_PER_INPUT_S, memory_mb=256, mode=mode) as box:
        timed: dict[int, tuple[float, object]] = {}

        def verify(index: int) -> None:
            started = time.monotonic()
            result = verify_candidate(codes[index], dataset, box, is_code=True)
            timed[index] = (time.monotonic() - started, result)

        def all_at_once(indices) -> None:
            threads = [threading.Thread(target=verify, args=(i,)) for i in indices]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)

        all_at_once([len(codes) - 1] * 16)  # starts all 16 workers (honest runs)
        timed.clear()
        all_at_once(range(len(codes)))
    assert len(timed) == len(codes)
    for index, (elapsed, result) in timed.items():
        if codes[index] == HONEST:
            assert_honest(result)
            assert elapsed < HONEST_SECONDS, elapsed
        else:
            assert (result.status, result.limit_split) == ("timeout", "val"), (STALLS[index // 2], result.first_error)
            assert elapsed < bound + 3.0, (STALLS[index // 2], elapsed, bound)


# ---- issue 20: compiling is inside the budget -----------------------------------------------------------


def compile_bomb(chars: int) -> str:
    """An honest program with a function whose call has thousands of keyword arguments: CPython checks
    them for duplicates pairwise, so its compile time grows with the square of its size (~4 s at 250 KB)."""
    head = HONEST + "\n\ndef g():\n    return h("
    count = (chars - len(head) - 2) // 10
    return head + ", ".join(f"a{i:06d}={i % 10}" for i in range(count)) + ")\n"


@pytest.mark.parametrize("chars", [250_000, 300_000, 1_000_000])
def test_a_compile_bomb_is_too_large_or_a_timeout_and_costs_the_orchestrator_nothing(pool, dataset, chars) -> None:
    from llm_erm.verify.extract import MAX_ANSWER_CHARS
    from llm_erm.verify.sandbox import IDLE_FACTOR, STARTUP_S, WALL_EXTRA_S

    code = compile_bomb(chars)
    cpu, wall = time.process_time(), time.monotonic()
    result = verify_candidate(code, dataset, pool, is_code=True)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert cpu < 1.0, cpu
    if len(code) > MAX_ANSWER_CHARS:
        assert result.status == "too_large"
    else:
        assert (result.status, result.limit_split) == ("timeout", "val"), result.first_error
        assert "compiling" in result.first_error
        rows = sum(len(dataset.split(name).inputs) for name in ("train", "val", "test"))
        assert wall < (1 + IDLE_FACTOR) * (STARTUP_S + pool.time_per_input_s * rows) + WALL_EXTRA_S + 3.0
    assert_honest(verify_candidate(HONEST, dataset, pool, is_code=True))


# ---- issue 20: the memory of a candidate's whole sandbox tree --------------------------------------------


def tree_rss_mb(root: int) -> float:
    """Resident memory of `root` and all its descendants, in MB (shared pages counted in each: an upper bound)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        pending += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as handle:
                total += next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        except OSError:
            continue
    return total / 1024


@pytest.mark.parametrize("memory_mb", [128, 1024])
def test_the_ast_amplifier_keeps_the_sandbox_tree_within_its_bound(dataset, memory_mb) -> None:
    """A 255 KB program whose syntax tree takes ~170 MB: it is parsed in the candidate's own process under
    its memory limit (at 128 MB: out of memory; at 1024 MB: it runs), and the worker's whole process tree
    (bwrap, zygote, supervisor, candidate) stays within memory_mb + WORKER_OVERHEAD_MB throughout."""
    from llm_erm.verify.sandbox import WORKER_OVERHEAD_MB

    head = HONEST + "\n\ndef g():\n    return ["
    code = head + "a," * ((255_000 - len(head)) // 2) + "]\n"
    with Sandbox(workers=1, memory_mb=memory_mb, mode="bwrap") as box:
        (zygote,) = box._live
        peak, done = [0.0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], tree_rss_mb(zygote.process.pid))
                done.wait(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            result = verify_candidate(code, dataset, box, is_code=True)
        finally:
            done.set()
            sampler.join()
        assert result.status == ("memory" if memory_mb == 128 else "ok"), result.first_error
        assert 20 < peak[0] <= memory_mb + WORKER_OVERHEAD_MB, peak[0]
        if memory_mb == 1024:
            assert peak[0] > 150  # the sampler saw the tree being built
        assert_honest(verify_candidate(HONEST, dataset, box, is_code=True))


def test_the_workers_are_fitted_to_the_hosts_available_memory() -> None:
    from llm_erm.errors import UsageError
    from llm_erm.verify.sandbox import WORKER_OVERHEAD_MB, available_memory_mb, fit_workers

    available = available_memory_mb()
    assert available is not None
    per_worker = 1024 + WORKER_OVERHEAD_MB
    assert fit_workers(1, 1024) == (1, None)
    lowered, note = fit_workers(10_000, 1024)
    assert lowered == available // per_worker and "lowered from 10000" in note
    with pytest.raises(UsageError, match="lower --candidate-memory-mb"):
        fit_workers(1, available + 1)


# ---- issue 20: host facts --------------------------------------------------------------------------------


def test_a_candidate_reads_no_host_facts(pool, dataset) -> None:
    """No host RAM, uptime, host-wide process counts or mount table (sysinfo refused, no /proc); in
    bubblewrap mode no host path (the interpreter and libraries at paths of ours) and nothing of /usr beyond
    the interpreter's libraries."""
    strict = pool.mode == "bwrap"
    host_paths = [os.path.realpath(sys.base_prefix), str(REPO), "/work", "/root"] if strict else []
    code = hostile("host_facts", strict=strict, host_paths="|".join(host_paths), phys_pages=os.sysconf("SC_PHYS_PAGES"))
    assert_contained(verify_candidate(code, dataset, pool, is_code=True))
    assert_honest(verify_candidate(HONEST, dataset, pool, is_code=True))


def test_an_answer_the_journal_cannot_store_fails_its_attempt_once_and_is_not_bought_on_resume(tmp_path) -> None:
    """Where the journal cannot be written at all (here its directory is a file), the answer is an error
    of its attempt, recorded in the ledger; a resume finds the trial finished and calls nobody."""
    from llm_erm import GridConfig, run_grid
    from llm_erm.results import ledger
    from llm_erm.results.journal import JOURNAL_DIR
    from llm_erm.wire.server import Reply, WireServer

    sold = []

    def model(endpoint: str, body: dict) -> Reply:
        sold.append(body.get("seed"))
        return Reply("```python\n" + HONEST + "```\n", prompt_tokens=100, completion_tokens=50)

    run_dir = tmp_path / "results" / "j"
    run_dir.mkdir(parents=True)
    (run_dir / JOURNAL_DIR).write_text("not a directory")
    with WireServer(model) as server:
        config = {"functions": ["fn_a"], "lengths": [20], "attempts": 1, "trials": 1, "test_size": 200,
                  "proposer": {"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 10},
                  "concurrency": 1, "verify_workers": 1, "analyze": False, "run_id": "j",
                  "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets")}
        run_grid(GridConfig(**config))
        run_grid(GridConfig(**config))
    assert len(sold) == 1
    (row,) = ledger.read_attempts(run_dir).to_pylist()
    assert row["status"] == "unstorable" and "could not be journaled" in row["propose_error"], row

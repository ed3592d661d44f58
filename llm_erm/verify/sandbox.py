"""Run untrusted candidate programs in a pool of warm, sandboxed worker processes.

Each worker is a small "zygote" (`worker.py`, run by a bare `python -S`) started once; every candidate runs
in a fresh fork of it, with limits set from outside the candidate:

- wall clock: the zygote kills the fork at the deadline; CPU: RLIMIT_CPU; memory: RLIMIT_AS/RLIMIT_DATA;
  no child processes: RLIMIT_NPROC = 0 (and, when we are root, the fork drops to an unused uid of its
  own worker, because the kernel exempts uid 0 from that limit; being alone with that uid, it cannot
  signal any other process either);
- `bwrap` mode (bubblewrap): new pid/net/ipc/uts namespaces (no network at all, no other process in
  sight), an empty environment, a read-only filesystem made of /usr, the interpreter's prefix and the
  installed libraries only (not the home directory, not the checkout, not the datasets), and one
  writable place: a small private tmpfs as scratch, wiped between candidates;
- `rlimit` mode, the fallback where bubblewrap is missing or cannot create namespaces: the same limits and
  empty environment in plain processes, without the filesystem and network isolation. The mode is
  recorded in every result.

The orchestrator sends code and inputs, never labels, and gets back one mark per input (a 0/1 prediction
or an error) that `score.py` compares with the labels. The pool is thread-safe; `workers` bounds how many
candidates run at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from llm_erm.errors import UsageError

MODES = ("bwrap", "rlimit")
WORKER = Path(__file__).with_name("worker.py")
# When we are root, each worker's candidates run as a uid of their own from this range (no account
# needs to exist): no other process on the host has it, so kill(-1) or ptrace reach nothing.
CANDIDATE_UIDS = range(2_000_000_000, 2_100_000_000)
_worker_numbers = itertools.count()
GRACE_S = 5.0  # beyond the candidate's limit, for transfers; a zygote silent this long is killed
SCRATCH_BYTES = 64 << 20
# What candidates see as their environment: nothing from ours. Threads of numeric libraries are pinned
# to one (they would be refused by the no-child-processes limit anyway); the hash seed is fixed so a
# candidate that iterates over a set behaves the same in every run.
CANDIDATE_ENV = {
    "LC_ALL": "C.UTF-8",
    "PATH": "/usr/bin:/bin",
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
MARKS = frozenset("01EI")  # a prediction, raised, invalid return; "-" (never ran) is added here, not sent


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start a worker); not the candidate's fault."""


@dataclass(frozen=True)
class Outcome:
    """What a candidate did on one batch of inputs: one mark per input, in order.

    "0"/"1": the prediction; "E": the call raised; "I": it returned something that is not a 0/1 label;
    "-": never ran (the candidate failed to load, or was stopped before reaching it).
    """

    marks: str
    first_error: str | None = None

    @property
    def predictions(self) -> list[int | None]:
        return [int(m) if m in "01" else None for m in self.marks]

    @property
    def errors(self) -> int:
        """Inputs without a valid prediction (raised, invalid, or never ran)."""
        return len(self.marks) - self.marks.count("0") - self.marks.count("1")


@dataclass(frozen=True)
class Execution:
    """One candidate's run over its batches of inputs.

    status: "ok" (every input answered validly), "runtime_errors" (some call raised or returned an invalid
    value, or the module failed at load), "syntax_error", "no_function", "timeout", "memory", "crashed".
    """

    status: str
    outcomes: tuple[Outcome, ...]
    error: str | None  # why the candidate stopped, for the statuses that stop it
    function: str | None  # the name of the function that was called
    seconds: float
    sandbox: str

    @property
    def first_error(self) -> str | None:
        if self.error is not None:
            return self.error
        return next((o.first_error for o in self.outcomes if o.first_error), None)


class Sandbox:
    """A pool of sandboxed workers. Use as a context manager, or call close().

    Sandbox(workers=None, timeout_s=10.0, memory_mb=1024, mode=None)
      workers    candidates running at once (default: os.cpu_count())
      timeout_s  wall-clock limit of one candidate over all its batches
      memory_mb  address-space limit of one candidate
      mode       "bwrap", "rlimit" or None (bwrap where it works, else rlimit; see `fallback_reason`)
    """

    def __init__(
        self,
        workers: int | None = None,
        timeout_s: float = 10.0,
        memory_mb: int = 1024,
        *,
        mode: str | None = None,
    ) -> None:
        workers = (os.cpu_count() or 1) if workers is None else workers
        if workers < 1:
            raise UsageError(f"sandbox workers must be at least 1, got {workers}")
        if not timeout_s > 0:
            raise UsageError(f"sandbox timeout must be positive, got {timeout_s}")
        if memory_mb < 64:
            raise UsageError(f"sandbox memory limit must be at least 64 MB, got {memory_mb}")
        if mode not in (None, *MODES):
            raise UsageError(f"unknown sandbox mode {mode!r}: use one of {', '.join(MODES)} (or none for auto)")
        self.workers = workers
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.fallback_reason: str | None = None  # why bwrap is not used, when it is not
        # Zygotes are started from this one long-lived thread: bwrap --die-with-parent (and the zygote's
        # own parent-death signal) fire when the *thread* that started them ends, and the calling threads
        # of a task runner come and go.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="llm-erm-sandbox-spawner")
        self._live: set[_Zygote] = set()
        self._live_lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _shut_down, self._live, self._live_lock, self._spawner)
        self._idle: queue.LifoQueue[_Zygote | None] = queue.LifoQueue()
        self._closed = False
        try:
            first = self._start_first(mode)
        except BaseException:
            self.close()
            raise
        for _ in range(workers - 1):
            self._idle.put(None)  # started on first use
        self._idle.put(first)  # last in, first out: the warm one is used first

    @property
    def mode(self) -> str:
        return self._launch.mode

    def run(self, code: str, inputs: Sequence[str]) -> Execution:
        """Run `code`'s function on every input; the result has one Outcome."""
        return self.run_batches(code, [inputs])

    def run_batches(self, code: str, batches: Sequence[Sequence[str]]) -> Execution:
        """Run `code`'s function on each batch in order, in one fresh process, under one time limit.
        Batches after the one where the candidate stopped (timeout, memory, crash) are marked "-"."""
        sizes = [len(batch) for batch in batches]
        frame, max_output = encode_request(code, batches, self.timeout_s, self.memory_mb)
        reply_cap = 2 * max_output + (1 << 16)  # JSON escaping of the output at most doubles it
        zygote = self._acquire()
        started = time.monotonic()
        try:
            reply = zygote.exchange(frame, self.timeout_s + GRACE_S, reply_cap)
        except _WorkerLost as lost:
            self._discard(zygote)
            zygote = None
            seconds = time.monotonic() - started
            dashes = tuple(Outcome("-" * size) for size in sizes)
            status = "timeout" if lost.timed_out else "crashed"
            return Execution(status, dashes, str(lost), None, seconds, self.mode)
        finally:
            self._idle.put(zygote)
        return interpret(reply, sizes, self.mode)

    def close(self) -> None:
        """Stop every worker. Idempotent."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the pool ------------------------------------------------------------------------------------

    def _acquire(self) -> _Zygote:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        zygote = self._idle.get()
        if zygote is not None and zygote.alive():
            return zygote
        if zygote is not None:
            self._discard(zygote)
        # Every new worker is probed, so that a sandbox that stops working fails loudly here instead
        # of being blamed on the next candidate as a crash.
        try:
            problem, zygote = self._probe(self._launch)
        except BaseException:
            self._idle.put(None)
            raise
        if problem is not None:
            self._idle.put(None)
            raise SandboxError(f"a new {self.mode} sandbox worker failed its probe run: {problem}")
        return zygote

    def _spawn(self, launch: _Launch) -> _Zygote:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        zygote = self._spawner.submit(_Zygote, launch).result()
        with self._live_lock:
            self._live.add(zygote)
        return zygote

    def _discard(self, zygote: _Zygote) -> None:
        with self._live_lock:
            self._live.discard(zygote)
        zygote.kill()

    def _start_first(self, mode: str | None) -> _Zygote:
        """Start the first worker in the requested mode, or the best one that passes a probe run."""
        problem = None
        for candidate in [mode] if mode else list(MODES):
            if candidate == "bwrap" and not shutil.which("bwrap"):
                problem = "bubblewrap (bwrap) is not installed"
            else:
                launch = _launch_for(candidate)
                problem, zygote = self._probe(launch)
                if problem is None:
                    self._launch = launch
                    return zygote
                if candidate == "bwrap":
                    problem = f"bubblewrap cannot run here: {problem}"
            if candidate == "bwrap":
                self.fallback_reason = problem
        if mode == "bwrap":
            raise UsageError(
                f"{problem}; install the Debian package bubblewrap on a kernel that allows namespaces, "
                "or use the rlimit sandbox mode"
            )
        raise SandboxError(f"cannot start a sandbox worker: {problem}")

    def _probe(self, launch: _Launch) -> tuple[str | None, _Zygote | None]:
        """Start a zygote and run a trivial candidate; (None, zygote) when that works."""
        try:
            zygote = self._spawn(launch)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc}", None
        frame, _ = encode_request("def f(x):\n    return 1\n", [["0"]], 10.0, self.memory_mb)
        try:
            reply = zygote.exchange(frame, 10.0 + GRACE_S, 1 << 20)
            execution = interpret(reply, [1], launch.mode)
            problem = None if execution.outcomes[0].marks == "1" else f"probe run {execution.first_error}"
        except _WorkerLost as lost:
            problem = zygote.stderr_tail() or str(lost)
        if problem is not None:
            self._discard(zygote)
            return problem, None
        return None, zygote


def encode_request(
    code: str, batches: Sequence[Sequence[str]], timeout_s: float, memory_mb: int
) -> tuple[bytes, int]:
    """The two frames of a request (see worker.py) and the most result bytes the candidate may write."""
    inputs = [x for batch in batches for x in batch]
    # Newline-joined strings cost a memcpy; a JSON list (dicts of tabular rows, odd strings) ~10x more.
    try:
        joined = "\n".join(inputs)
        plain = joined.count("\n") == max(len(inputs) - 1, 0)  # no input holds a newline itself
    except TypeError:  # not all strings
        plain = False
    blob = joined.encode() if plain else json.dumps(inputs).encode()
    sizes = [len(batch) for batch in batches]
    max_output = 2 * len(inputs) + 16384 * (len(sizes) + 1)
    header = json.dumps({
        "code": code, "sizes": sizes, "encoding": "lines" if plain else "json",
        "timeout_s": timeout_s, "memory_mb": memory_mb, "max_output": max_output,
    }).encode()
    return b"".join((len(header).to_bytes(8, "big"), header, len(blob).to_bytes(8, "big"), blob)), max_output


def _shut_down(live: set, lock: threading.Lock, spawner: ThreadPoolExecutor) -> None:
    with lock:
        zygotes = list(live)
        live.clear()
    for zygote in zygotes:
        zygote.kill()
    spawner.shutdown(wait=False)


# -- launching -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Launch:
    mode: str
    argv: tuple[str, ...]  # without the per-worker flags (--drop-to UID, and --scratch DIR in rlimit mode)


def _interpreter() -> tuple[str, list[str]]:
    """The real interpreter binary and the library directories (site-packages) candidates may import."""
    python = os.path.realpath(sys.executable)
    libraries = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_paths()[key])
        if os.path.isdir(path) and path not in libraries:
            libraries.append(path)
    return python, libraries


def _launch_for(mode: str) -> _Launch:
    python, libraries = _interpreter()
    if mode == "rlimit":
        paths = [arg for path in libraries for arg in ("--path", path)]
        return _Launch(mode, (python, "-S", "-s", "-P", str(WORKER), *paths))
    return _Launch(mode, (*_bwrap_argv(python, libraries), "--scratch", "/tmp"))


def _bwrap_argv(python: str, libraries: list[str]) -> list[str]:
    """bwrap ... python -S -s -P /opt/llm-erm/worker.py --path ...: everything but the worker's flags."""
    argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--clearenv"]
    if os.geteuid() == 0:
        # As root, bwrap needs no user namespace; we skip it so the candidate can change to an
        # unprivileged uid (inside a user namespace only root is mapped). The zygote keeps just what it
        # needs for that: changing uid, killing and cleaning up after a candidate that is not root.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"):
            argv += ["--cap-add", cap]
    else:
        argv += ["--unshare-all"]
    for name, value in {**CANDIDATE_ENV, "HOME": "/tmp", "TMPDIR": "/tmp"}.items():
        argv += ["--setenv", name, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    prefix = os.path.realpath(sys.base_prefix)
    mounted = [prefix] if prefix != "/usr" and not prefix.startswith("/usr/") else []
    if not python.startswith((prefix + "/", "/usr/")):
        mounted.append(os.path.dirname(python))
    binds = [(path, path) for path in mounted]
    binds += [(path, f"/opt/llm-erm/lib{i}") for i, path in enumerate(libraries)]
    for source, target in binds:
        # Parent directories bwrap creates itself are mode 0700: make them traversable for that uid.
        parents = Path(target).parents
        for parent in reversed([p for p in parents if str(p) != "/"]):
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", source, target]
    argv += ["--ro-bind", str(WORKER), "/opt/llm-erm/worker.py"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    argv += ["--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp"]
    argv += ["--remount-ro", "/", "--chdir", "/tmp"]
    argv += [python, "-S", "-s", "-P", "/opt/llm-erm/worker.py"]
    for i in range(len(libraries)):
        argv += ["--path", f"/opt/llm-erm/lib{i}"]
    return argv


# -- one worker --------------------------------------------------------------------------------------


class _WorkerLost(Exception):
    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _Zygote:
    """One warm worker process and its two pipes. Used by one thread at a time (the pool's queue)."""

    def __init__(self, launch: _Launch) -> None:
        self.scratch: str | None = None
        argv = list(launch.argv)
        if os.geteuid() == 0:
            number = (os.getpid() % 10_000) * 10_000 + next(_worker_numbers) % 10_000
            argv += ["--drop-to", str(CANDIDATE_UIDS[number % len(CANDIDATE_UIDS)])]
        cwd = "/"
        if launch.mode == "rlimit":
            # A private scratch directory per worker, writable by the candidates' uid.
            self.scratch = cwd = tempfile.mkdtemp(prefix="llm-erm-scratch-")
            os.chmod(self.scratch, 0o777)
            argv += ["--scratch", self.scratch]
        env = {**CANDIDATE_ENV, "HOME": cwd, "TMPDIR": cwd}
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True, close_fds=True,
        )
        for stream in (self.process.stdin, self.process.stdout):
            os.set_blocking(stream.fileno(), False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def exchange(self, frame: bytes, timeout_s: float, reply_cap: int) -> dict:
        deadline = time.monotonic() + timeout_s
        try:
            self._send(frame, deadline)
            size = int.from_bytes(self._receive(8, deadline), "big")
            if size > reply_cap:
                raise _WorkerLost(f"the sandbox worker sent an oversized reply ({size} bytes)")
            reply = json.loads(self._receive(size, deadline))
        except (OSError, ValueError) as exc:
            raise _WorkerLost(f"the sandbox worker failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, dict):
            raise _WorkerLost("the sandbox worker sent a malformed reply")
        return reply

    def _send(self, data: bytes, deadline: float) -> None:
        fd = self.process.stdin.fileno()
        view = memoryview(data)
        while view:
            self._wait(fd, deadline, write=True)
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError as exc:
                raise _WorkerLost(self._death_note()) from exc

    def _receive(self, size: int, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        data = bytearray()
        while len(data) < size:
            self._wait(fd, deadline, write=False)
            try:
                chunk = os.read(fd, min(size - len(data), 1 << 20))
            except BlockingIOError:
                continue
            if not chunk:
                raise _WorkerLost(self._death_note())
            data += chunk
        return bytes(data)

    def _wait(self, fd: int, deadline: float, write: bool) -> None:
        left = deadline - time.monotonic()
        ready = select.select([], [fd], [], max(left, 0))[1] if write else select.select([fd], [], [], max(left, 0))[0]
        if not ready:
            raise _WorkerLost("the candidate ran past its time limit and the worker stopped answering", True)

    def _death_note(self) -> str:
        try:
            code = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "the sandbox worker closed its channel"
        if code < 0:
            return f"the sandbox worker was killed by {_signal_name(-code)} (did the candidate kill its parent?)"
        return f"the sandbox worker exited with code {code}"

    def stderr_tail(self) -> str:
        """The worker's last words, once it is dead (bwrap reports its set-up failures there)."""
        self.kill()
        text = self.process.stderr.read(4096).decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else ""

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            with contextlib.suppress(OSError):
                stream.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# -- reading a reply -------------------------------------------------------------------------------


def interpret(reply: dict, sizes: list[int], mode: str) -> Execution:
    """Turn a zygote's reply (the candidate's untrusted result lines plus how its process ended) into an
    Execution. Anything malformed makes the candidate `crashed`; nothing it wrote is trusted further."""
    marks: list[list[str]] = [[] for _ in sizes]
    errors: list[str | None] = [None for _ in sizes]
    function = stop = stop_error = None
    done = False
    malformed = None
    seconds = reply.get("seconds") if isinstance(reply.get("seconds"), int | float) else 0.0
    output = reply.get("output") if isinstance(reply.get("output"), str) else ""
    for line in output.splitlines():
        try:
            event = json.loads(line)
            kind = event["event"]
            if kind == "marks":
                batch, chunk = event["batch"], event["marks"]
                if not (type(batch) is int and 0 <= batch < len(sizes) and type(chunk) is str):
                    raise ValueError("bad marks event")
                if not set(chunk) <= MARKS or sum(map(len, marks[batch])) + len(chunk) > sizes[batch]:
                    raise ValueError("bad marks")
                marks[batch].append(chunk)
            elif kind == "error":
                batch, text = event["batch"], event["error"]
                if not (type(batch) is int and 0 <= batch < len(sizes) and type(text) is str):
                    raise ValueError("bad error event")
                errors[batch] = errors[batch] or text[:300]
            elif kind == "function":
                function = str(event["name"])[:200]
            elif kind in ("syntax_error", "load_error", "memory", "no_function"):
                if stop is None:
                    stop, stop_error = kind, str(event.get("error", ""))[:300] or None
            elif kind == "done":
                done = True
            else:
                raise ValueError(f"unknown event {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            malformed = f"the candidate's process wrote a malformed result ({exc})"
            break
    joined = ["".join(parts) for parts in marks]
    complete = all(len(j) == size for j, size in zip(joined, sizes, strict=True))

    def finish(status: str, error: str | None, fill: str = "-") -> Execution:
        outcomes = tuple(
            Outcome(j + fill * (size - len(j)), errors[i]) for i, (j, size) in enumerate(zip(joined, sizes, strict=True))
        )
        return Execution(status, outcomes, error, function, float(seconds), mode)

    signal_number = reply.get("signal")
    if reply.get("overflow"):
        return finish("crashed", "the candidate wrote more result data than its inputs allow")
    if malformed:
        return finish("crashed", malformed)
    if stop == "syntax_error":
        return finish("syntax_error", stop_error)
    if stop == "no_function":
        return finish("no_function", "no function: define f(x), or at least one top-level def")
    if stop == "load_error":
        return finish("runtime_errors", stop_error, fill="E")
    if stop == "memory":
        return finish("memory", "the candidate ran out of memory (MemoryError under the memory limit)")
    if reply.get("timed_out") or signal_number == signal.SIGXCPU:
        return finish("timeout", "the candidate ran past its time limit")
    if done and complete:
        clean = all(set(j) <= {"0", "1"} for j in joined)
        return finish("ok" if clean else "runtime_errors", None)
    if type(signal_number) is int:
        return finish("crashed", f"the candidate's process was killed by {_signal_name(signal_number)}")
    return finish("crashed", f"the candidate's process exited (code {reply.get('exit')}) before finishing")

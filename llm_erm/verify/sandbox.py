"""Run untrusted candidate programs in a pool of warm, sandboxed workers, one candidate at a time per worker.

Each worker (`worker.py`, under a bare `python -S`) is a small zygote that never touches a request: for
every candidate it forks a fresh supervisor, which reads the request, forks the candidate into a state no
earlier candidate touched, and watches it from outside (see worker.py):

- isolation between candidates: a fresh IPC namespace and a fresh bounded tmpfs (bytes and inodes) per
  candidate, dropped with its namespace (no cleanup to defeat); a uid of its own (when we are root) from a
  block of uids this Sandbox holds with a lock file, so no two orchestrators on the host share one; no
  keyring, no SysV/POSIX IPC, no memfd (seccomp); nothing of earlier candidates in its memory.
- time: a CPU allowance per input (`time_per_input_s`), read from the kernel by the supervisor as the
  candidate answers its inputs in chunks of 1, 10, 100, then 1000 rows: a chunk of n inputs may use
  n x the allowance plus a reserve of at most STARTUP_S (which also pays for compiling and loading the
  module). Time off the CPU that is the candidate's own doing (asleep, blocked on a pipe or a futex,
  stopped) is bounded too, for the whole run: IDLE_FACTOR x its CPU allowance + WALL_EXTRA_S, measured
  from /proc/<pid>/schedstat as wall time less time on a CPU less time waiting on a run queue. So its wall
  time, less the machine's queueing, is at most 2 x its CPU allowance + 2 s whatever it does, while a busy
  machine (queueing) never causes a timeout. A loop on the first input is stopped after about STARTUP_S
  of CPU, one on a later input within 1000 x the allowance + STARTUP_S.
- compiling: in the candidate's own process, after lockdown and before any of its code runs, so under
  its CPU clock and memory limit; the answer itself is bounded before any parsing (score.py: too_large).
- memory: RLIMIT_AS for everything mapped, plus a bounded tmpfs, bounded descriptors and no locked
  memory; every mechanism that could pin memory outside the address space (SysV/POSIX shared memory,
  memfd, new namespaces, io_uring, sockets, pipe resizing, ...) is refused by the seccomp filter. No
  syntax tree of the program lives outside the candidate: the supervisor only holds the request, under
  an address-space limit of what it holds + 32 MB. One worker's whole tree (zygote, supervisor, candidate,
  bwrap) stays within memory_mb + WORKER_OVERHEAD_MB, and `workers` x that is checked against the host's
  MemAvailable at start (fewer workers, said in `workers_note` and the log; none fits: UsageError).
- kernel surface: a seccomp allowlist (jail.py), Landlock where the kernel has it, no new privileges.
- `bwrap` mode (bubblewrap, the default): new pid/net/ipc/uts namespaces around the worker, an empty
  environment, a read-only filesystem of the interpreter's shared libraries (the loader's multiarch
  directory, not the rest of /usr), a private interpreter under /opt/llm-erm/python (no host path), the
  site-packages under /opt/llm-erm/libN; a /proc of the sandbox's own pid namespace for the supervisor, of
  which Landlock lets a candidate read only its own maps, status and stat (not mountinfo).
- `rlimit` mode (opt-in, where bubblewrap is missing or cannot run): the same supervisor, limits and
  seccomp filter in plain processes; Landlock gives the same read-only view (no home, no checkout, no
  datasets, of /proc only its own maps, status and stat, so no orchestrator environment) and no network;
  Landlock is required.

What a candidate can still learn of the host, and what it still shares with other candidates, is written
down here: none of it carries label information, except the one residual channel named as such (the
timing of cold reads):
- read-only files (the shared libraries, the interpreter, site-packages): the same bytes for every
  candidate. Their page-cache residency is host state, so every call that reveals or changes it on
  purpose is refused (mincore, fadvise64, readahead, cachestat, remap_file_pages, preadv2/pwritev2 with
  flags such as RWF_NOWAIT, madvise WILLNEED/COLD/PAGEOUT/POPULATE/MERGEABLE, mlock). What remains is
  that reading a page makes it resident and a cold read is slower: a candidate could time its reads. It
  cannot evict a page on purpose, the pages it could warm are those every interpreter start reads (warm
  anyway) or of large rarely-read libraries, and each read of a probe destroys the bit it reads; a
  timing channel of this kind is noisy, low-rate and not closed here (a fully resident copy of the
  filesystem on tmpfs would close it, at the cost of the libraries' size in memory).
- the kernel's version (uname), the CPU count and features (cpuid, sched_getaffinity; in rlimit mode
  /sys/devices/system/cpu), the clock: the same for everyone, no labels in them. No host RAM, uptime or
  host-wide process count (sysinfo refused, /proc closed but for its own maps, status and stat), no host
  path in bwrap mode (mountinfo unreachable; the interpreter and libraries at paths of ours; the files
  an install leaves in site-packages that name the checkout, an editable finder, .pth, direct_url.json,
  read as empty). rlimit mode shows the host's paths of the interpreter and site-packages it reads
  (Landlock cannot rename paths).
- kernel memory that no limit charges to it: negative dentries (stat() of missing names: reclaimable
  slab, growing with CPU time, not memory; the kernel reclaims them under pressure), VMAs and page tables
  (at most vm.max_map_count VMAs, a global setting no process can lower for itself: counted in
  WORKER_OVERHEAD_MB). Bounded by its CPU allowance and by the kernel, not by us; no label information.

The orchestrator sends code and inputs, never labels, and gets back one mark per input (a 0/1 prediction
or an error) that `score.py` compares with the labels. The pool is thread-safe; `workers` bounds how many
candidates run at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import queue
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from llm_erm.errors import UsageError

MODES = ("bwrap", "rlimit")
MODE_CHOICES = (*MODES, "auto")
HERE = Path(__file__).resolve().parent
WORKER, JAIL = HERE / "worker.py", HERE / "jail.py"

# Time: the per-input allowance is the caller's; these shape what surrounds it. A candidate has a reserve of
# STARTUP_S of CPU for loading (imports: sympy ~0.4 s, numpy ~0.2 s here) and one-off costs (a lazy
# `import sympy` inside f, a garbage collection); a chunk of n inputs may use n x the allowance plus what is
# left of the reserve, and what it leaves of its allowance refills the reserve up to STARTUP_S.
STARTUP_S = 1.0
CHUNK_SIZES = (1, 10, 100, 1000)  # inputs per chunk in each batch: 1, 10, 100, then 1000 at a time
# Time off the CPU (asleep, blocked, stopped; not waiting on a run queue) a candidate may take in all:
# IDLE_FACTOR x its whole CPU allowance + WALL_EXTRA_S. So its wall time, less the machine's queueing, is
# at most (1 + IDLE_FACTOR) x its CPU allowance + WALL_EXTRA_S: 2 x allowance + 2 s.
IDLE_FACTOR = 1.0
WALL_FACTOR = 10.0  # where the kernel keeps no schedstat: a chunk's wall backstop = WALL_EXTRA_S + this x its CPU
WALL_EXTRA_S = 2.0
GRACE_S = 5.0  # beyond the supervisor's own backstop, for transfers; a worker silent this long is killed
# Memory: the candidate's share of memory_mb; the rest covers its scratch tmpfs and kernel objects.
SCRATCH_MB = 16
SCRATCH_INODES = 1024
KERNEL_RESERVE_MB = 8  # pipes (<= NOFILE/2 x 64 KiB), page tables, descriptors
NOFILE = 64
# Beyond memory_mb, what one worker holds on the host: the zygote and the supervisor (each an interpreter of
# ~15 MB, the supervisor also holding its request under an address-space limit of what it holds + 32 MB),
# bubblewrap, and kernel objects that no limit charges to the candidate (at most vm.max_map_count VMAs of
# ~200 bytes: ~13 MB at the default 65 530). The whole tree of one candidate stays within memory_mb + this.
WORKER_OVERHEAD_MB = 96
# Candidate uids (when we are root): blocks of UID_BLOCK uids from UID_BASE; a Sandbox holds one block
# with an exclusive flock for its whole life (its workers inherit the lock), so two live orchestrators
# never hand out the same uid. No account needs to exist.
UID_BASE = 2_000_000_000
UID_BLOCK = 100_000
UID_BLOCKS = 1_000
UID_LOCK_DIRS = ("/run/llm-erm-uids", "/var/lock/llm-erm-uids", "/tmp/llm-erm-uids")
# What candidates see as their environment: nothing from ours. Threads of numeric libraries are pinned
# to one (threads are refused anyway); the hash seed is fixed so a candidate that iterates over a set
# behaves the same in every run.
CANDIDATE_ENV = {
    "LC_ALL": "C.UTF-8",
    "PATH": "/usr/bin:/bin",
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
MARKS = frozenset("01EI-")
OUTCOMES = ("finished", "load_error", "syntax_error", "no_function", "timeout", "memory", "crashed",
            "sandbox_failure")
# The probe candidate answers 1 when its seccomp filter is in force: socket() is refused (EPERM) by seccomp
# alone (Landlock and the network namespace allow creating one).
PROBE = "import socket\n\ndef f(x):\n    try:\n        socket.socket().close()\n    except PermissionError:\n" \
        "        return 1\n    return 0\n"


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
    limit_batch: the index of the batch in which a time or memory limit stopped it (None otherwise).
    """

    status: str
    outcomes: tuple[Outcome, ...]
    error: str | None  # why the candidate stopped, for the statuses that stop it
    function: str | None  # the name of the function that was called
    seconds: float
    sandbox: str
    limit_batch: int | None = None
    cpu_s: float = 0.0
    compile_cpu_s: float | None = None  # CPU the candidate's process had used when its program was compiled
    idle_s: float = 0.0  # time it spent neither running nor waiting for a CPU

    @property
    def first_error(self) -> str | None:
        if self.error is not None:
            return self.error
        return next((o.first_error for o in self.outcomes if o.first_error), None)


class Sandbox:
    """A pool of sandboxed workers. Use as a context manager, or call close().

    Sandbox(workers=None, *, time_per_input_s=0.01, memory_mb=1024, mode="bwrap")
      workers           candidates running at once (default: os.cpu_count())
      time_per_input_s  CPU seconds a candidate may use per input, on top of a start-up allowance
      memory_mb         memory of one candidate: address space, scratch tmpfs and kernel objects together
      mode              "bwrap" (refuses to run without bubblewrap), "rlimit" (the weaker opt-in), or
                        "auto" (bwrap where it works, else rlimit; see `fallback_reason`)
    `bounds` says which bounds are in force (JSON-able, for the run's manifest).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        time_per_input_s: float = 0.01,
        memory_mb: int = 1024,
        mode: str = "bwrap",
    ) -> None:
        workers = (os.cpu_count() or 1) if workers is None else workers
        if workers < 1:
            raise UsageError(f"sandbox workers must be at least 1, got {workers}")
        if not 0 < time_per_input_s <= 60:
            raise UsageError(f"the candidate timeout must be a positive number of CPU seconds per input "
                             f"(at most 60), got {time_per_input_s}")
        if memory_mb < 128:
            raise UsageError(f"the sandbox memory limit must be at least 128 MB, got {memory_mb}")
        if mode not in MODE_CHOICES:
            raise UsageError(f"unknown sandbox mode {mode!r}: use one of {', '.join(MODE_CHOICES)}")
        self.workers_requested = workers
        workers, self.workers_note = fit_workers(workers, memory_mb)
        self.workers = workers
        self.time_per_input_s = float(time_per_input_s)
        self.memory_mb = int(memory_mb)
        self.fallback_reason: str | None = None  # why bwrap is not used, when it is not
        self.bounds: dict = {}
        # Zygotes are started from this one long-lived thread: bwrap --die-with-parent (and the zygote's
        # own parent-death signal) fire when the *thread* that started them ends, and the calling threads
        # of a task runner come and go.
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="llm-erm-sandbox-spawner")
        self._live: set[_Zygote] = set()
        self._live_lock = threading.Lock()
        self._uids = _UidBlock.claim() if os.geteuid() == 0 else None
        self._scratch = tempfile.mkdtemp(prefix="llm-erm-scratch-")  # rlimit mode's (empty) mount point
        os.chmod(self._scratch, 0o755)
        self._finalizer = weakref.finalize(
            self, _shut_down, self._live, self._live_lock, self._spawner, self._uids, self._scratch)
        self._idle: queue.LifoQueue[_Zygote | None] = queue.LifoQueue()
        self._closed = False
        self._encode_cache: OrderedDict = OrderedDict()  # see _encoded
        self._encode_lock = threading.Lock()
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

    def _encoded(self, batches: Sequence[Sequence]) -> tuple[str, bytes]:
        """The inputs frame, made once for the same batch objects: a grid verifies every attempt of a cell on
        the same splits. The cache holds the batches themselves, so an id is never reused while cached."""
        key = tuple(id(batch) for batch in batches)
        with self._encode_lock:
            hit = self._encode_cache.get(key)
            if hit is not None and all(a is b for a, b in zip(hit[0], batches, strict=True)):
                self._encode_cache.move_to_end(key)
                return hit[1]
        encoded = encode_inputs(batches)
        with self._encode_lock:
            self._encode_cache[key] = (tuple(batches), encoded)
            while len(self._encode_cache) > ENCODE_CACHE:
                self._encode_cache.popitem(last=False)
        return encoded

    def run(self, code: str, inputs: Sequence) -> Execution:
        """Run `code`'s function on every input; the result has one Outcome."""
        return self.run_batches(code, [inputs])

    def run_batches(self, code: str, batches: Sequence[Sequence]) -> Execution:
        """Run `code`'s function on each batch in order, in one fresh candidate process. Inputs are strings
        or JSON-able values (tabular rows as dicts). Batches after the one where the candidate stopped
        (timeout, memory, crash) are marked "-"."""
        sizes = [len(batch) for batch in batches]
        inputs = self._encoded(batches)
        zygote = self._acquire()
        try:
            frames = encode_request(code, batches, self._limits(sizes, zygote), inputs)
        except BaseException:
            self._idle.put(zygote)
            raise
        started = time.monotonic()
        deadline = started + self._wall_backstop(sizes) + GRACE_S
        try:
            reply = zygote.exchange(frames, deadline, reply_cap(sizes))
        except _WorkerLost as lost:
            self._discard(zygote)
            zygote = None
            seconds = time.monotonic() - started
            dashes = tuple(Outcome("-" * size) for size in sizes)
            status = "timeout" if lost.timed_out else "crashed"
            return Execution(status, dashes, str(lost), None, seconds, self.mode)
        finally:
            if zygote is not None and zygote.broken:
                self._discard(zygote)
                zygote = None
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

    # -- limits ------------------------------------------------------------------------------------------

    def _cpu_allowance(self, sizes: list[int]) -> float:
        """The most CPU a candidate may use on these batches: the reserve is refilled only by what the
        chunks leave of their per-input allowance, so all in all STARTUP_S + the allowance of every input."""
        return STARTUP_S + self.time_per_input_s * sum(sizes)

    def _wall_backstop(self, sizes: list[int]) -> float:
        """The longest the supervisor lets a candidate run: every phase (loading, each chunk) at its own
        wall-clock backstop, each with the whole reserve."""
        phases = 1 + sum(chunk_count(size) for size in sizes)
        return phases * (WALL_EXTRA_S + WALL_FACTOR * STARTUP_S) + WALL_FACTOR * self.time_per_input_s * sum(sizes)

    def _limits(self, sizes: list[int], zygote: _Zygote) -> dict:
        scratch = SCRATCH_MB << 20 if zygote.capabilities.get("namespaces") else 0
        return {
            "time_per_input_s": self.time_per_input_s,
            "startup_s": STARTUP_S,
            "chunk_sizes": list(CHUNK_SIZES),
            "wall_factor": WALL_FACTOR,
            "wall_extra_s": WALL_EXTRA_S,
            "idle_allowance_s": IDLE_FACTOR * self._cpu_allowance(sizes) + WALL_EXTRA_S,
            "cpu_backstop_s": self._cpu_allowance(sizes) + 1.0,
            "address_space_bytes": (self.memory_mb - SCRATCH_MB - KERNEL_RESERVE_MB) << 20,
            "scratch_bytes": scratch,
            "scratch_inodes": SCRATCH_INODES,
            "nofile": NOFILE,
            "uid": self._uids.next_uid() if self._uids is not None else None,
        }

    # -- the pool ------------------------------------------------------------------------------------

    def _acquire(self) -> _Zygote:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        zygote = self._idle.get()
        if zygote is not None and zygote.ready():
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
        zygote = self._spawner.submit(_Zygote, launch, self._uids).result()
        with self._live_lock:
            self._live.add(zygote)
        return zygote

    def _discard(self, zygote: _Zygote) -> None:
        with self._live_lock:
            self._live.discard(zygote)
        zygote.kill()

    def _start_first(self, mode: str) -> _Zygote:
        """Start the first worker in the requested mode (auto: the best that passes its probe)."""
        problems = {}
        for candidate in (MODES if mode == "auto" else (mode,)):
            if candidate == "bwrap" and not shutil.which("bwrap"):
                problems[candidate] = "bubblewrap (bwrap) is not installed"
                continue
            launch = _launch_for(candidate, self._scratch)
            problem, zygote = self._probe(launch)
            if problem is None:
                self._launch = launch
                if candidate != "bwrap":
                    self.fallback_reason = problems.get("bwrap", "the rlimit sandbox mode was requested")
                self.bounds = self._describe_bounds(zygote)
                return zygote
            problems[candidate] = f"{'bubblewrap' if candidate == 'bwrap' else 'the rlimit sandbox'} " \
                                  f"cannot run here: {problem}"
        bwrap_fix = "install bubblewrap (apt-get install bubblewrap) on a kernel that allows namespaces"
        if mode == "bwrap":
            raise UsageError(f"{problems['bwrap']}: {bwrap_fix}, or opt in to the weaker sandbox with "
                             "--sandbox rlimit")
        if mode == "rlimit":
            raise UsageError(f"{problems['rlimit']}: it needs Linux with Landlock and seccomp (5.13 or newer); "
                             f"or {bwrap_fix} and use --sandbox bwrap")
        raise UsageError(f"no sandbox can run here ({problems['bwrap']}; {problems['rlimit']}): {bwrap_fix}")

    def _probe(self, launch: _Launch) -> tuple[str | None, _Zygote | None]:
        """Start a zygote, check what it can lock a candidate into, run a probe candidate; (None, zygote)
        when all of that works."""
        try:
            zygote = self._spawn(launch)
        except (OSError, _WorkerLost) as exc:
            return f"{type(exc).__name__}: {exc}", None
        problem = _missing_layers(launch.mode, zygote.capabilities)
        if problem is None:
            frames = encode_request(PROBE, [["0"]], {**self._limits([1], zygote), "time_per_input_s": 10.0})
            try:
                execution = interpret(zygote.exchange(frames, time.monotonic() + 60, 1 << 20), [1], launch.mode)
                if execution.outcomes[0].marks != "1":
                    problem = f"probe run: {execution.status} {execution.first_error or ''}".strip()
            except SandboxError as exc:
                problem = str(exc)
            except _WorkerLost as lost:
                problem = zygote.stderr_tail() or str(lost)
        if problem is not None or zygote.broken:
            self._discard(zygote)
            return problem or "the worker failed after its probe run", None
        return None, zygote

    def _describe_bounds(self, zygote: _Zygote) -> dict:
        caps = zygote.capabilities
        per_candidate = ["ipc", "mount"] if caps["namespaces"] else []
        if self._launch.mode == "bwrap":
            filesystem = ("bubblewrap: read-only shared libraries of the interpreter (not the rest of /usr), the "
                          "interpreter under /opt/llm-erm/python, site-packages; of /proc a candidate's own maps, status, stat")
            network = "none: network namespace; sockets refused by seccomp"
            around = ["pid", "net", "ipc", "uts"] + (["user"] if not caps["root"] else [])
        else:
            filesystem = "Landlock: read-only " + ", ".join(self._launch.readable)
            network = "none: sockets refused by seccomp" + ("; TCP refused by Landlock" if caps["landlock"] >= 4 else "")
            around = []
        scratch = {"kind": "fresh tmpfs per candidate", "mb": SCRATCH_MB, "inodes": SCRATCH_INODES} \
            if caps["namespaces"] else {"kind": "none: nothing is writable"}
        if self._uids is not None:
            uids = {"kind": "a fresh uid per candidate", "range": [self._uids.first, self._uids.last],
                    "lock": self._uids.path}
        else:
            uids = {"kind": "the orchestrator's own uid (not root); signals limited to itself by seccomp"}
        return {
            "mode": self._launch.mode,
            "fallback_reason": self.fallback_reason,
            "workers": {"requested": self.workers_requested, "running": self.workers, "note": self.workers_note,
                        "memory_per_worker_mb": self.memory_mb + WORKER_OVERHEAD_MB},
            "time": {
                "cpu_per_input_s": self.time_per_input_s, "startup_cpu_s": STARTUP_S,
                "chunk_sizes": list(CHUNK_SIZES),
                "rule": f"a chunk of n inputs may use n x {self.time_per_input_s:g} s of CPU plus a reserve of at "
                        f"most {STARTUP_S:g} s (which pays for loading too, and is refilled by what chunks leave); "
                        "the candidate's process CPU clock, read by its supervisor",
                "off_cpu": f"time neither running nor waiting on a run queue (asleep, blocked, stopped; from "
                           f"/proc/<pid>/schedstat) at most {IDLE_FACTOR:g} x the whole CPU allowance + "
                           f"{WALL_EXTRA_S:g} s: wall time less queueing <= {1 + IDLE_FACTOR:g} x allowance + "
                           f"{WALL_EXTRA_S:g} s; a busy machine's queueing is never charged",
                "wall_backstop": f"without schedstat: {WALL_EXTRA_S:g} s + {WALL_FACTOR:g} x the CPU allowance of each "
                                 "chunk",
                "compile": "inside the candidate's process, under its CPU clock (the start-up reserve) and memory",
            },
            "memory": {
                "limit_mb": self.memory_mb,
                "address_space_mb": self.memory_mb - SCRATCH_MB - KERNEL_RESERVE_MB,
                "scratch": scratch,
                "kernel_reserve_mb": KERNEL_RESERVE_MB,
                "worker_overhead_mb": WORKER_OVERHEAD_MB,
                "cgroup": "not used: memory that RLIMIT_AS does not cover is refused instead (SysV/POSIX "
                          "shm, memfd, namespaces, io_uring, sockets, pipe resizing, locked memory)",
            },
            "rlimits": {"nofile": NOFILE, "nproc": 0, "memlock": 0, "msgqueue": 0, "core": 0, "sigpending": 64},
            "seccomp": {"arch": caps["seccomp"], "allowed_syscalls": caps["seccomp_syscalls"],
                        "otherwise": "EPERM"},
            "landlock_abi": caps["landlock"] or None,
            "namespaces": {"around_worker": around, "per_candidate": per_candidate},
            "candidate_uid": uids,
            "filesystem": filesystem,
            "network": network,
            "environment": sorted(CANDIDATE_ENV),
        }


def available_memory_mb() -> int | None:
    """MemAvailable of the host (what can be allocated without swapping), None where unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def fit_workers(workers: int, memory_mb: int) -> tuple[int, str | None]:
    """(workers, why they were lowered or None): as many as the host's available memory holds at their worst
    (memory_mb + WORKER_OVERHEAD_MB each). UsageError when not even one fits."""
    available = available_memory_mb()
    if available is None:
        return workers, None
    per_worker = memory_mb + WORKER_OVERHEAD_MB
    fit = available // per_worker
    if fit < 1:
        raise UsageError(f"the host has {available} MB of memory available, less than one sandbox worker needs "
                         f"({memory_mb} MB for the candidate + {WORKER_OVERHEAD_MB} MB): lower "
                         "--candidate-memory-mb or free memory")
    if workers <= fit:
        return workers, None
    note = (f"verify workers lowered from {workers} to {fit}: {workers} x ({memory_mb} + {WORKER_OVERHEAD_MB}) MB "
            f"is more than the {available} MB of memory available")
    logging.getLogger(__name__).warning(note)
    return fit, note


def chunk_count(size: int) -> int:
    """How many chunks a batch of `size` inputs is answered in."""
    count = 0
    for rows in CHUNK_SIZES[:-1]:
        if size <= 0:
            return count
        size -= rows
        count += 1
    return count + max(0, -(-size // CHUNK_SIZES[-1]))


def _missing_layers(mode: str, caps: dict) -> str | None:
    """Why a worker with these capabilities cannot give `mode`'s promises, or None when it can."""
    if not caps.get("seccomp"):
        return "no seccomp filter for this machine (x86_64 and aarch64 only)"
    if mode == "bwrap" and not caps.get("namespaces"):
        return "the worker cannot create per-candidate mount and IPC namespaces"
    if mode == "rlimit" and not caps.get("landlock"):
        return "Landlock is not available (it keeps candidates out of the host's files without bubblewrap)"
    return None


ENCODE_CACHE = 16  # cells whose encoded inputs are kept (a few MB at most)


def reply_cap(sizes: list[int]) -> int:
    """The largest reply a supervisor can legitimately send for these batches."""
    return 2 * sum(sizes) + 2048 * (len(sizes) + 4) + (1 << 16)


def encode_inputs(batches: Sequence[Sequence]) -> tuple[str, bytes]:
    """(encoding, the inputs frame) of a request's inputs: newline-joined strings, else a JSON list."""
    inputs = [x for batch in batches for x in batch]
    # Newline-joined strings cost a memcpy; a JSON list (dicts of tabular rows, odd strings) ~10x more.
    try:
        joined = "\n".join(inputs)
        plain = joined.count("\n") == max(len(inputs) - 1, 0)  # no input holds a newline itself
    except TypeError:  # not all strings
        plain = False
    blob = joined.encode() if plain else json.dumps(inputs).encode()
    return ("lines" if plain else "json"), _frame(b"I", blob)


def encode_request(code: str, batches: Sequence[Sequence], limits: dict,
                   inputs: tuple[str, bytes] | None = None) -> bytes:
    """The two frames of a request (see worker.py); `inputs` is encode_inputs(batches), when already made."""
    encoding, frame = inputs or encode_inputs(batches)
    header = json.dumps({"code": code, "sizes": [len(batch) for batch in batches],
                         "encoding": encoding, **limits}).encode()
    return _frame(b"Q", header) + frame


def _frame(tag: bytes, body: bytes) -> bytes:
    return tag + len(body).to_bytes(8, "big") + body


def _shut_down(live: set, lock: threading.Lock, spawner: ThreadPoolExecutor, uids: _UidBlock | None,
               scratch: str) -> None:
    with lock:
        zygotes = list(live)
        live.clear()
    for zygote in zygotes:
        zygote.kill()
    spawner.shutdown(wait=False)
    if uids is not None:
        uids.release()
    with contextlib.suppress(OSError):
        os.rmdir(scratch)  # empty: candidates wrote only into tmpfs mounted over it, or nothing


# -- candidate uids ----------------------------------------------------------------------------------------


class _UidBlock:
    """An exclusively locked block of candidate uids (root only)."""

    def __init__(self, index: int, fd: int, path: str) -> None:
        self.fd, self.path = fd, path
        self.first = UID_BASE + index * UID_BLOCK
        self.last = self.first + UID_BLOCK - 1
        self._next = itertools.count()

    @classmethod
    def claim(cls) -> _UidBlock:
        directory = _uid_lock_dir()
        for index in range(UID_BLOCKS):
            path = os.path.join(directory, f"{index}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(index, fd, path)
        raise SandboxError(f"all {UID_BLOCKS} candidate uid blocks in {directory} are in use")

    def next_uid(self) -> int:
        return self.first + next(self._next) % UID_BLOCK

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _uid_lock_dir() -> str:
    """A root-owned directory that every orchestrator on the host agrees on."""
    for directory in UID_LOCK_DIRS:
        parent = os.path.dirname(directory)
        if not os.path.isdir(parent):
            continue
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        info = os.lstat(directory)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022:
            return directory
    raise SandboxError(f"no safe directory for the candidate uid locks (tried {', '.join(UID_LOCK_DIRS)})")


# -- launching -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Launch:
    mode: str
    argv: tuple[str, ...]
    readable: tuple[str, ...] = ()


def _interpreter() -> tuple[str, list[str]]:
    """The real interpreter binary and the library directories (site-packages) candidates may import."""
    python = os.path.realpath(sys.executable)
    libraries = []
    for key in ("purelib", "platlib"):
        path = os.path.realpath(sysconfig.get_paths()[key])
        if os.path.isdir(path) and path not in libraries:
            libraries.append(path)
    return python, libraries


def _system_libraries() -> list[str]:
    """The host directories the interpreter and its extension modules load shared libraries from (the
    dynamic loader, libc, libm, libssl, libffi, ...) and the C.UTF-8 locale: nothing else of /usr."""
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu"
    paths = [f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/lib64", "/usr/lib/locale/C.utf8"]
    return list(dict.fromkeys(os.path.realpath(path) for path in paths if os.path.exists(path)))


def _standard_library() -> list[str]:
    """A system interpreter's standard library (a private one lives under its prefix)."""
    paths = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
    return sorted(path for path in paths if os.path.isdir(path))


def _launch_for(mode: str, scratch: str) -> _Launch:
    python, libraries = _interpreter()
    if mode == "rlimit":
        prefix = os.path.realpath(sys.base_prefix)
        readable = [*_system_libraries(), "/etc/ld.so.cache", "/dev/null", "/dev/zero", "/dev/urandom",
                    "/sys/devices/system/cpu", python, *_standard_library(), *libraries]
        if prefix != "/usr" and not prefix.startswith("/usr/"):
            readable.append(prefix)
        readable = list(dict.fromkeys(path for path in readable if os.path.exists(path)))
        argv = [python, "-S", "-s", "-P", str(WORKER), "--scratch", scratch]
        argv += [arg for path in libraries for arg in ("--path", path)]
        argv += [arg for path in readable for arg in ("--read", path)]
        # As root, candidates run as other uids, which may not be able to reach the interpreter (a pyenv
        # under /root): the worker makes the readable paths reachable in its own mount namespace.
        argv += ["--expose", "yes" if os.geteuid() == 0 else "no"]
        return _Launch(mode, tuple(argv), tuple(readable))
    return _Launch(mode, tuple(_bwrap_argv(python, libraries)))


def _host_path_files(library: str) -> list[str]:
    """Files of a site-packages directory (relative paths) that record host paths rather than code."""
    names = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(library):
            if entry.name.startswith("__editable__") or entry.name.endswith(".pth"):
                names.append(entry.name)
            elif entry.name.endswith(".dist-info") and os.path.exists(os.path.join(entry.path, "direct_url.json")):
                names.append(f"{entry.name}/direct_url.json")
    return sorted(names)


BWRAP_READABLE = ("/usr", "/lib", "/lib64", "/opt/llm-erm", "/etc/ld.so.cache", "/dev/null", "/dev/zero",
                  "/dev/urandom")  # everything mounted, /proc and /dev's others apart


def _bwrap_argv(python: str, libraries: list[str]) -> list[str]:
    """bwrap ... /opt/llm-erm/python/bin/python -S -s -P /opt/llm-erm/worker.py --scratch /tmp --path ...

    The filesystem holds the interpreter's shared libraries (not the rest of /usr), a private interpreter
    under /opt/llm-erm/python (so no host path shows), the site-packages under /opt/llm-erm/libN, the worker,
    a /proc of the sandbox's own pid namespace (which Landlock keeps candidates out of) and /dev."""
    argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--new-session", "--clearenv"]
    if os.geteuid() == 0:
        # As root, bwrap needs no user namespace; we skip it so the candidate can change to an
        # unprivileged uid (inside a user namespace only root is mapped). The zygote keeps just what its
        # supervisors need: new namespaces and a tmpfs per candidate, changing uid, killing a candidate.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--cap-drop", "ALL"]
        for cap in ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_FOWNER"):
            argv += ["--cap-add", cap]
    else:
        # CAP_SYS_ADMIN of bubblewrap's own user namespace, for the supervisors' per-candidate mount and
        # IPC namespaces; candidates drop every capability before their code runs.
        argv += ["--unshare-all", "--cap-add", "CAP_SYS_ADMIN"]
    env = {**CANDIDATE_ENV, "HOME": "/tmp", "TMPDIR": "/tmp"}
    prefix = os.path.realpath(sys.base_prefix)
    binds = [(path, path) for path in _system_libraries()]
    if python.startswith(prefix + "/") and prefix != "/usr" and not prefix.startswith("/usr/"):
        # A private interpreter (pyenv, a build under /opt ...): its whole prefix, at a path of ours. It
        # finds its standard library next to itself; its libpython through LD_LIBRARY_PATH where its
        # rpath names the host path.
        binds.append((prefix, "/opt/llm-erm/python"))
        inside = "/opt/llm-erm/python" + python[len(prefix):]
        env["LD_LIBRARY_PATH"] = "/opt/llm-erm/python/lib"
    else:
        binds += [(path, path) for path in (python, *_standard_library())]
        inside = python
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
    binds += [(path, f"/opt/llm-erm/lib{i}") for i, path in enumerate(libraries)]
    # Files that name host paths (an editable install's finder and .pth, direct_url.json: the checkout's
    # path) read as empty; none of them is imported under `python -S`.
    binds += [("/dev/null", f"/opt/llm-erm/lib{i}/{name}") for i, path in enumerate(libraries)
              for name in _host_path_files(path)]
    binds.append(("/etc/ld.so.cache", "/etc/ld.so.cache"))
    for name, value in env.items():
        argv += ["--setenv", name, value]
    made = {"/"}
    for source, target in binds:
        if not os.path.exists(source):
            continue
        # Parent directories bwrap creates itself are mode 0700: make them traversable for that uid.
        for parent in reversed([str(p) for p in Path(target).parents]):
            if parent not in made:
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        argv += ["--ro-bind", source, target]
    argv += ["--perms", "0755", "--dir", "/opt/llm-erm"]
    argv += ["--ro-bind", str(WORKER), "/opt/llm-erm/worker.py", "--ro-bind", str(JAIL), "/opt/llm-erm/jail.py"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"]
    argv += ["--perms", "0755", "--dir", "/tmp"]  # each candidate gets its own tmpfs mounted here
    argv += ["--remount-ro", "/", "--chdir", "/"]
    argv += [inside, "-S", "-s", "-P", "/opt/llm-erm/worker.py", "--scratch", "/tmp"]
    argv += [arg for path in BWRAP_READABLE for arg in ("--read", path)]
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

    def __init__(self, launch: _Launch, uids: _UidBlock | None) -> None:
        self.broken = False  # set when it must not serve another candidate
        env = {**CANDIDATE_ENV, "HOME": "/", "TMPDIR": "/"}
        # The uid block's lock travels with the worker: it stays held while any of its processes lives.
        self.process = subprocess.Popen(
            list(launch.argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd="/", start_new_session=True, close_fds=True,
            pass_fds=(uids.fd,) if uids is not None else (),
        )
        for stream in (self.process.stdin, self.process.stdout):
            os.set_blocking(stream.fileno(), False)
        try:
            tag, body = self._read_frame(time.monotonic() + 60, 1 << 16)
            if tag != b"H":
                raise _WorkerLost(f"the sandbox worker said {tag!r} instead of hello")
            self.capabilities = _parse_hello(body)
        except _WorkerLost as lost:
            raise _WorkerLost(self.stderr_tail() or str(lost)) from None

    def ready(self) -> bool:
        """Alive, and silent: a worker never speaks unasked (a stray frame means its supervisor died)."""
        if self.process.poll() is not None or self.broken:
            return False
        return not select.select([self.process.stdout.fileno()], [], [], 0)[0]

    def exchange(self, frames: bytes, deadline: float, reply_cap: int) -> dict:
        """Send a request; the supervisor's reply. Raises _WorkerLost when there is none."""
        self._send(frames, deadline)
        tag, body = self._read_frame(deadline, reply_cap)
        if tag == b"Z":
            self.broken = True
            raise _WorkerLost(f"the sandbox supervisor ended without a reply ({_wait_status(body)})")
        if tag != b"R":
            raise _WorkerLost(f"the sandbox worker sent an unexpected {tag!r} frame")
        try:
            reply = json.loads(body)
        except Exception as exc:  # noqa: BLE001 - any failure to parse is a lost worker, never a raise
            raise _WorkerLost(f"the sandbox worker sent an unreadable reply ({type(exc).__name__})") from None
        if not isinstance(reply, dict):
            raise _WorkerLost("the sandbox worker sent a malformed reply")
        # The zygote then reports how the supervisor ended; anything but a clean exit retires the worker.
        try:
            tag, body = self._read_frame(time.monotonic() + GRACE_S, 16)
            if tag != b"Z" or _wait_status(body) != "exit 0":
                self.broken = True
        except _WorkerLost:
            self.broken = True
        return reply

    def _read_frame(self, deadline: float, cap: int) -> tuple[bytes, bytes]:
        head = self._receive(9, deadline)
        size = int.from_bytes(head[1:], "big")
        if size > cap:
            raise _WorkerLost(f"the sandbox worker sent an oversized frame ({size} bytes)")
        return head[:1], self._receive(size, deadline)

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
        left = max(deadline - time.monotonic(), 0)
        ready = select.select([], [fd], [], left)[1] if write else select.select([fd], [], [], left)[0]
        if not ready:
            raise _WorkerLost("the candidate ran past its time limit and the worker stopped answering", True)

    def _death_note(self) -> str:
        try:
            code = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "the sandbox worker closed its channel"
        if code < 0:
            return f"the sandbox worker was killed by {_signal_name(-code)}"
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


def _parse_hello(body: bytes) -> dict:
    try:
        hello = json.loads(body)
        caps = {
            "seccomp": hello["seccomp"] if isinstance(hello["seccomp"], str) else None,
            "seccomp_syscalls": int(hello["seccomp_syscalls"]),
            "landlock": int(hello["landlock"]),
            "namespaces": hello["namespaces"] is True,
            "root": hello["root"] is True,
        }
    except Exception as exc:  # noqa: BLE001
        raise _WorkerLost(f"the sandbox worker sent an unreadable hello ({type(exc).__name__})") from None
    return caps


def _wait_status(body: bytes) -> str:
    status = int.from_bytes(body[:4], "big", signed=True)
    if os.WIFEXITED(status):
        return f"exit {os.WEXITSTATUS(status)}"
    if os.WIFSIGNALED(status):
        return f"killed by {_signal_name(os.WTERMSIG(status))}"
    return f"status {status}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# -- reading a reply -------------------------------------------------------------------------------


def interpret(reply: object, sizes: list[int], mode: str) -> Execution:
    """Turn a supervisor's reply into an Execution. The supervisor is trusted code, but this never raises
    whatever it is given (a malformed reply makes the candidate `crashed`), except SandboxError when the
    candidate process could not be locked down (before any candidate code ran)."""
    try:
        return _interpret(reply, sizes, mode)
    except SandboxError:
        raise
    except Exception as exc:  # noqa: BLE001 - never raise into the orchestrator
        dashes = tuple(Outcome("-" * size) for size in sizes)
        return Execution("crashed", dashes, f"the sandbox sent an unreadable reply ({type(exc).__name__})",
                         None, 0.0, mode)


def _text(value: object, limit: int = 300) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _interpret(reply: object, sizes: list[int], mode: str) -> Execution:
    if not isinstance(reply, dict):
        raise ValueError("not a dict")
    outcome = reply.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    if outcome == "sandbox_failure":
        raise SandboxError(f"a candidate process could not be locked down: {_text(reply.get('detail'))}")
    marks, errors = reply.get("marks"), reply.get("errors")
    if not (isinstance(marks, list) and isinstance(errors, list) and len(marks) == len(errors) == len(sizes)):
        raise ValueError("marks or errors of the wrong shape")
    for batch, size in zip(marks, sizes, strict=True):
        if not (isinstance(batch, str) and len(batch) == size and set(batch) <= MARKS):
            raise ValueError("bad marks")
    detail, function = _text(reply.get("detail")), _text(reply.get("function"), 200)
    seconds = reply.get("seconds") if type(reply.get("seconds")) in (int, float) else 0.0
    cpu = reply.get("cpu_s") if type(reply.get("cpu_s")) in (int, float) else 0.0
    compiled = float(reply["compile_cpu_s"]) if type(reply.get("compile_cpu_s")) in (int, float) else None
    idle = reply.get("idle_s") if type(reply.get("idle_s")) in (int, float) else 0.0
    stop_batch = reply.get("stop_batch")
    stop_batch = stop_batch if type(stop_batch) is int and 0 <= stop_batch < len(sizes) else None

    def finish(status: str, error: str | None, *, fill: str | None = None, limit: bool = False) -> Execution:
        outcomes = tuple(
            Outcome(m.replace("-", fill) if fill else m, _text(e)) for m, e in zip(marks, errors, strict=True))
        return Execution(status, outcomes, error, function, float(seconds), mode,
                         stop_batch if limit else None, float(cpu), compiled, float(idle))

    if outcome == "finished":
        clean = all(set(m) <= {"0", "1"} for m in marks)
        return finish("ok" if clean else "runtime_errors", None)
    if outcome == "load_error":
        return finish("runtime_errors", detail, fill="E")
    if outcome == "syntax_error":
        return finish("syntax_error", detail or "SyntaxError")
    if outcome == "no_function":
        return finish("no_function", "no function: define f(x), or at least one top-level def")
    if outcome in ("timeout", "memory"):
        default = "the candidate ran past its time limit" if outcome == "timeout" else "out of memory"
        return finish(outcome, detail or default, limit=True)
    # crashed: say how the process ended
    signal_number, exit_code = reply.get("signal"), reply.get("exit")
    if detail is None:
        if type(signal_number) is int:
            detail = f"the candidate's process was killed by {_signal_name(signal_number)}"
        else:
            detail = f"the candidate's process exited (code {exit_code}) before finishing"
    return finish("crashed", detail)

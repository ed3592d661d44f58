"""The sandbox's worker: the only program that runs inside the sandbox. Standard library only.

    python -S -s -P worker.py --scratch DIR [--path DIR]... [--read PATH]...

Three roles, three processes, so that no candidate ever shares memory or kernel state with another:

- the **zygote** (one per warm worker, started by sandbox.py) imports a few common modules once, says
  what this host allows (hello frame), then forever: forks a *supervisor*, waits for it to end, reports
  how it ended, forks the next one. It never reads a request or a reply itself, so its memory, which
  every later candidate inherits, holds no byte of any candidate's program, inputs or answers.
- the **supervisor** (trusted, one per candidate) enters a fresh IPC and mount namespace (where the host
  allows it), reads one request under its own small address-space limit, mounts a fresh bounded tmpfs as
  scratch, forks the candidate, measures its CPU time, its time asleep and its wall clock while it
  answers, validates every byte it sends, writes the reply and exits. It never parses the program: no
  syntax tree of it exists outside the candidate. Its namespaces (and the tmpfs with whatever the
  candidate left in it) die with it: nothing is cleaned up, so nothing can slow a cleanup.
- the **candidate** process locks itself down (its own uid when we are root, resource limits, Landlock,
  seccomp), then, still before any untrusted code runs, parses and compiles the program and finds the
  function to call from the syntax tree, under its own CPU clock and memory limit (a compile bomb is a
  timeout or out of memory like any other; syntax_error and no_function are decided here, by our code),
  drops the tree, and only then loads the program and answers the inputs in chunks.

Frames (orchestrator <-> zygote's stdin/stdout): a 1-byte tag, an 8-byte big-endian length, the body.
  zygote -> orchestrator  b"H" hello JSON (once); b"Z" the supervisor's wait status (after each one)
  orchestrator -> supervisor  request: b"Q" JSON header {"code", "sizes", "encoding", limits...} then
           b"I" the inputs of all batches in order: newline-joined ("lines") or a JSON list ("json")
  supervisor -> orchestrator  b"R" reply JSON (see `reply`), written once, by trusted code only

Records (candidate -> supervisor, on a private pipe; untrusted, checked byte by byte):
  b"K"                 locked down (sent before any candidate code runs)
  b"F" len16 text      lockdown failed (accepted only before K: the sandbox's fault, not the candidate's)
  b"S" len16 text      the program does not compile (accepted only between K and C)
  b"N"                 it compiles but defines no function (only between K and C)
  b"C" len16 names     compiled: the functions that may be called, best first, newline-separated (each
                       cut to MAX_NAME_CHARS, at most 255); the last record written before untrusted code
                       runs, so everything up to it is trusted
  b"L" index8          loaded; calling the index-th of those names
  b"A" len16 text      the module failed at load
  b"X"                 MemoryError
  b"R" len16 text      first error of the current batch
  b"M" len16 marks     the marks of exactly the current chunk: "0"/"1" a prediction, "E" the call raised,
                       "I" it returned something that is not a valid label
Anything else ends the candidate as `crashed`.
"""

import ast
import contextlib
import json
import os
import resource
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jail  # noqa: E402 - next to this file, inside and outside the sandbox

del sys.path[0]

# Imported once here so that candidates importing them pay nothing.
PRELOADED = (
    "array", "bisect", "collections", "dataclasses", "decimal", "fractions", "functools", "hashlib",
    "heapq", "itertools", "math", "operator", "random", "re", "statistics", "string", "struct",
    "typing", "zlib",
)
MAX_ERROR_CHARS = 300
MAX_ERROR_BYTES = 4 * MAX_ERROR_CHARS + 16
EXIT_REPLIED, EXIT_EOF, EXIT_ORPHAN = 0, 3, 4
DEF_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
MAX_NAME_CHARS = 200  # of a function's name in a record or the reply (a name may have 100 000 characters)
MAX_NAMES = 255
SUPERVISOR_HEADROOM_BYTES = 32 << 20


def address_space() -> int:
    """This process's mapped size in bytes (VmSize)."""
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
_exit = os._exit  # bound before any candidate runs (a candidate may patch `os`)


# ---- shared by supervisor and candidate ------------------------------------------------------------


def chunk_bounds(size: int, chunk_sizes: list[int], *, min=min, len=len) -> list[tuple[int, int]]:
    """(start, stop) of the chunks of a batch of `size` rows: chunk_sizes in turn, then its last size
    again and again. (Builtins bound: a candidate may replace them before its process calls this.)"""
    bounds, start, step = [], 0, 0
    while start < size:
        rows = chunk_sizes[min(step, len(chunk_sizes) - 1)]
        bounds.append((start, min(start + rows, size)))
        start += rows
        step += 1
    return bounds


def describe(exc: BaseException, type=type, BaseException=BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = type(exc).__name__
    return text[:MAX_ERROR_CHARS]


# ---- frames --------------------------------------------------------------------------------------------


def read_exact(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, min(size - len(data), 1 << 20))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_frame(fd: int, tag: bytes) -> bytes | None:
    head = read_exact(fd, 9)
    if head is None:
        return None
    if head[:1] != tag:
        raise ValueError(f"expected a {tag!r} frame, got {head[:1]!r}")
    return read_exact(fd, int.from_bytes(head[1:], "big"))


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(fd: int, tag: bytes, body: bytes) -> None:
    write_all(fd, tag + len(body).to_bytes(8, "big") + body)


# ---- the zygote ------------------------------------------------------------------------------------


class Options:
    def __init__(self, argv: list[str]) -> None:
        self.scratch: str | None = None
        self.paths: list[str] = []  # sys.path additions (site-packages)
        self.readable: list[str] = []  # what Landlock lets a candidate read
        self.expose = False  # make `readable` reachable for the candidates' uids first (rlimit mode, root)
        args = iter(argv)
        for flag in args:
            value = next(args)
            if flag == "--scratch":
                self.scratch = value
            elif flag == "--path":
                self.paths.append(value)
            elif flag == "--read":
                self.readable.append(value)
            elif flag == "--expose":
                self.expose = value == "yes"
            else:
                raise SystemExit(f"worker.py: unknown argument {flag}")
        if self.scratch is None:
            raise SystemExit("worker.py: --scratch DIR is required")


def main(argv: list[str]) -> None:
    options = Options(argv)
    sys.path.extend(options.paths)
    for name in PRELOADED:
        __import__(name)
    jail.set_parent_death_signal(signal.SIGKILL)  # the orchestrator's spawner thread died: so do we
    # Not dumpable: a process of the same user cannot ptrace us or read our /proc/<pid>/mem.
    jail.set_dumpable(False)
    # The candidates' stdio goes nowhere; the orchestrator's channel moves to private descriptors.
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    if options.expose:
        jail.expose_paths(options.readable)
    os.chdir(options.scratch)
    capabilities = probe(options)
    write_frame(replies, b"H", json.dumps(capabilities).encode())
    zygote = os.getpid()
    while True:
        pid = os.fork()
        if pid == 0:
            code = EXIT_ORPHAN
            try:
                code = supervise(requests, replies, options, capabilities, zygote)
            finally:
                _exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_EOF:
            return  # the orchestrator closed the channel
        write_frame(replies, b"Z", status.to_bytes(4, "big", signed=True))


def probe(options: Options) -> dict:
    """What this host lets a candidate be locked into (the orchestrator decides what is enough)."""
    arch = jail.seccomp_arch()
    if arch is not None:
        jail.seccomp_filter(0, arch)  # built once here; every candidate inherits it and patches its pid
    abi = jail.landlock_abi()
    pid = os.fork()
    if pid == 0:  # can a supervisor get its own namespaces and tmpfs?
        try:
            jail.unshare_candidate_namespaces()
            jail.mount_scratch(options.scratch, 1 << 20, 16, None)
            code = 0
        except BaseException:  # noqa: BLE001 - any failure means no
            code = 1
        _exit(code)
    _, status = os.waitpid(pid, 0)
    return {
        "seccomp": arch,
        "seccomp_syscalls": jail.allowed_syscall_count(arch) if arch else 0,
        "landlock": abi,
        "namespaces": os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
        "root": os.geteuid() == 0,
        "python": sys.version.split()[0],
    }


# ---- the supervisor ------------------------------------------------------------------------------------


def supervise(requests: int, replies: int, options: Options, capabilities: dict, zygote: int) -> int:
    jail.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != zygote:
        return EXIT_ORPHAN
    jail.set_dumpable(False)
    if capabilities["namespaces"]:
        jail.unshare_candidate_namespaces()  # before the request: off the critical path
    request = read_request(requests)
    if request is None:
        return EXIT_EOF
    # From here on its own memory is what it holds now (interpreter, request) plus a small headroom for the
    # reply and the records it buffers; the hard limit stays open for the candidate, which sets its own.
    resource.setrlimit(resource.RLIMIT_AS, (address_space() + SUPERVISOR_HEADROOM_BYTES, resource.RLIM_INFINITY))
    reply = serve(request, options, capabilities)
    write_frame(replies, b"R", json.dumps(reply).encode())
    return EXIT_REPLIED


def read_request(fd: int) -> dict | None:
    header = read_frame(fd, b"Q")
    if header is None:
        return None
    blob = read_frame(fd, b"I")
    if blob is None:
        return None
    request = json.loads(header)
    inputs = json.loads(blob) if request["encoding"] == "json" else blob.decode().split("\n")
    if not request["sizes"] or sum(request["sizes"]) == 0:
        inputs = []
    request["batches"], start = [], 0
    for size in request["sizes"]:
        request["batches"].append(inputs[start:start + size])
        start += size
    return request


def function_names(tree: ast.Module) -> list[str]:
    """The functions the scorer may call, best first: `f` when the module binds it, else every def at
    module level (top-level ones first). Decided from the syntax tree, before anything runs."""
    bound, top, nested = set(), [], []
    pending = [(node, True) for node in reversed(tree.body)]
    while pending:
        node, top_level = pending.pop()
        if isinstance(node, DEF_NODES):
            bound.add(node.name)
            (top if top_level else nested).append(node.name)
            continue
        if isinstance(node, ast.ClassDef):
            bound.add(node.name)
            continue
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            continue  # their names are not module names
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        pending.extend((child, False) for child in reversed(list(ast.iter_child_nodes(node))))
    names = (["f"] if "f" in bound else []) + top + nested
    return list(dict.fromkeys(names))


def serve(request: dict, options: Options, capabilities: dict) -> dict:
    sizes = request["sizes"]
    reply = {
        "outcome": None, "detail": None, "function": None, "marks": ["-" * n for n in sizes],
        "errors": [None for _ in sizes], "stop_batch": None, "cpu_s": 0.0, "seconds": 0.0, "compile_cpu_s": None,
        "idle_s": 0.0, "maxrss_kb": None, "exit": None, "signal": None,
    }
    scratch_writable = False
    if capabilities["namespaces"] and request["scratch_bytes"] > 0:
        jail.mount_scratch(options.scratch, request["scratch_bytes"], request["scratch_inodes"], request["uid"])
        scratch_writable = True
    results_read, results_write = os.pipe()
    supervisor = os.getpid()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(results_read)
            candidate(request, results_write, options, capabilities, scratch_writable, supervisor)
        finally:
            _exit(0)
    os.close(results_write)
    try:
        watch(pid, results_read, request, reply, started)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # whatever state it is in, it is over
        _, status, usage = os.wait4(pid, 0)
        os.close(results_read)
    reply["seconds"] = time.monotonic() - started
    reply["maxrss_kb"] = usage.ru_maxrss
    cpu = usage.ru_utime + usage.ru_stime
    reply["cpu_s"] = max(reply["cpu_s"], cpu)
    if os.WIFEXITED(status):
        reply["exit"] = os.WEXITSTATUS(status)
    elif os.WIFSIGNALED(status):
        reply["signal"] = os.WTERMSIG(status)
    if reply["outcome"] == "crashed" and reply["signal"] in (signal.SIGXCPU, signal.SIGKILL) \
            and cpu >= request["cpu_backstop_s"]:
        # The kernel's RLIMIT_CPU backstop fired (a fact measured here, not something it reported).
        reply.update(outcome="timeout", detail=f"the candidate used {cpu:.2f} s of CPU (its hard limit)")
    return reply


def schedstat(pid: int) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds waiting on a run queue) of process `pid` (one thread: threads are
    refused), from /proc/<pid>/schedstat; None where the kernel does not keep them."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as handle:
            fields = handle.read().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


class Protocol(Exception):
    """The candidate broke the record protocol."""


def watch(pid: int, fd: int, request: dict, reply: dict, started: float) -> None:
    """Follow the candidate until it has answered every input or is stopped; fills `reply`.

    CPU: read from the kernel (its process CPU clock). It has a reserve of startup_s of CPU: compiling,
    loading (lockdown, module, imports) may use it, and each chunk of n inputs may use n x
    time_per_input_s plus what is left of the reserve; what a chunk leaves of its per-input allowance
    refills the reserve, up to startup_s. So one-off costs (a lazy import on the first call, a garbage
    collection) never stop a program that is fast on average, while a loop is stopped within n x
    time_per_input_s + startup_s.

    Time off the CPU: from /proc/<pid>/schedstat, its wall clock splits into time on a CPU, time waiting
    on a run queue (a busy machine: never charged to it) and the rest, time it chose not to run (asleep,
    blocked on its own pipe or futex, stopped). That rest may add up to idle_allowance_s over the whole
    run; beyond it, it is a timeout. So its wall time, less the machine's queueing, is at most its CPU
    allowance plus its idle allowance, whatever it does. Where the kernel keeps no schedstat, a chunk may
    take wall_extra_s + wall_factor x its CPU allowance of wall-clock time instead."""
    sizes = request["sizes"]
    per_input, startup = request["time_per_input_s"], request["startup_s"]
    wall_factor, wall_extra = request["wall_factor"], request["wall_extra_s"]
    idle_allowed = request["idle_allowance_s"]
    clock = ((~pid) << 3) | 2  # CPUCLOCK_SCHED of the whole process `pid`
    chunks = [(batch, start, stop) for batch, size in enumerate(sizes)
              for start, stop in chunk_bounds(size, request["chunk_sizes"])]
    marks: list[list[str]] = [[] for _ in sizes]
    names: list[str] = []
    phase = "lock"  # lock -> compile -> load -> rows
    current = 0  # index in `chunks` of the chunk being answered
    rows_allowed = 0  # inputs of the current chunk (0 while loading)
    cpu_at_start, wall_at_start = 0.0, started  # where the current phase or chunk began
    reserve = startup  # CPU on top of the per-input allowance, refilled by what chunks leave
    errors_seen = [False for _ in sizes]
    buffer = bytearray()
    use_schedstat = schedstat(pid) is not None

    def stop(outcome: str, detail: str | None) -> None:
        reply["outcome"], reply["detail"] = outcome, detail
        batch = chunks[current][0] if current < len(chunks) else (len(sizes) - 1 if sizes else None)
        reply["stop_batch"] = batch if phase == "rows" else (0 if sizes else None)
        finish()

    def finish() -> None:
        for batch, parts in enumerate(marks):
            joined = "".join(parts)
            reply["marks"][batch] = joined + "-" * (sizes[batch] - len(joined))

    def cpu_used() -> float | None:
        try:
            return time.clock_gettime(clock)
        except OSError:
            return None

    def next_chunk() -> None:
        nonlocal rows_allowed, cpu_at_start, wall_at_start, reserve
        now = cpu_used() or reply["cpu_s"]
        reserve = min(startup, reserve + per_input * rows_allowed - (now - cpu_at_start))
        rows_allowed = chunks[current][2] - chunks[current][1]
        cpu_at_start, wall_at_start = now, time.monotonic()

    def parse() -> bool:
        """Consume complete records from `buffer`; True when the candidate is done (answered or stopped)."""
        nonlocal phase, current
        while buffer:
            tag = buffer[0]
            if tag in b"KLXN":
                size = 2 if tag == ord("L") else 1
                if len(buffer) < size:
                    return False
                record, body = buffer[:size], b""
            else:
                if len(buffer) < 3:
                    return False
                length = int.from_bytes(buffer[1:3], "big")
                if tag not in b"FARMSC" or (tag not in b"MC" and length > MAX_ERROR_BYTES):
                    raise Protocol(f"record {bytes([tag])!r} of {length} bytes")
                if tag == ord("M") and (phase != "rows" or length != chunks[current][2] - chunks[current][1]):
                    raise Protocol("marks that do not match the chunk")
                if tag == ord("C") and phase != "compile":
                    raise Protocol("a program compiled twice")
                if len(buffer) < 3 + length:
                    return False
                size = 3 + length
                record, body = buffer[:size], bytes(buffer[3:size])
            del buffer[:size]
            if tag == ord("K") and phase == "lock":
                phase = "compile"
            elif tag == ord("F") and phase == "lock":
                raise SandboxFailure(body.decode("utf-8", "replace")[:MAX_ERROR_CHARS])
            elif tag == ord("S") and phase == "compile":
                reply["outcome"] = "syntax_error"
                reply["detail"] = body.decode("utf-8", "replace")[:MAX_ERROR_CHARS]
                return True
            elif tag == ord("N") and phase == "compile":
                reply["outcome"] = "no_function"
                return True
            elif tag == ord("C"):
                names[:] = [name[:MAX_NAME_CHARS] for name in body.decode("utf-8", "replace").split("\n")][:MAX_NAMES]
                reply["compile_cpu_s"] = cpu_used()
                phase = "load"
            elif tag == ord("L") and phase == "load":
                index = record[1]
                if index >= len(names):
                    raise Protocol("an unknown function")
                reply["function"] = names[index]
                phase = "rows"
                if not chunks:
                    finish()
                    reply["outcome"] = "finished"
                    return True
                next_chunk()
            elif tag == ord("A") and phase == "load":
                stop("load_error", "at load: " + body.decode("utf-8", "replace")[:MAX_ERROR_CHARS])
                return True
            elif tag == ord("X") and phase in ("compile", "load", "rows"):
                where = " while compiling" if phase == "compile" else ""
                stop("memory", f"the candidate ran out of memory{where} (MemoryError under the memory limit)")
                return True
            elif tag == ord("R") and phase == "rows":
                batch = chunks[current][0]
                if errors_seen[batch]:
                    raise Protocol("a second first error")
                errors_seen[batch] = True
                reply["errors"][batch] = body.decode("utf-8", "replace")[:MAX_ERROR_CHARS]
            elif tag == ord("M"):
                if body.strip(b"01EI"):
                    raise Protocol("marks other than 0, 1, E, I")
                marks[chunks[current][0]].append(body.decode("ascii"))
                current += 1
                if current == len(chunks):
                    finish()
                    reply["outcome"] = "finished"
                    return True
                next_chunk()
            else:
                raise Protocol(f"record {bytes([tag])!r} out of place")
        return False

    while True:
        cpu = cpu_used()
        if cpu is not None:
            reply["cpu_s"] = cpu
        cpu_allowed = max(reserve, 0.0) + per_input * rows_allowed
        used = (cpu or 0.0) - cpu_at_start
        now = time.monotonic()
        where = f"{rows_allowed} inputs" if phase == "rows" else ("compiling" if phase == "compile" else "loading")
        if cpu is not None and used > cpu_allowed:
            return stop("timeout", f"the candidate used {used:.2f} s of CPU, over its allowance of "
                                   f"{cpu_allowed:.2f} s for {where}")
        sched = schedstat(pid) if use_schedstat else None
        if sched is not None:
            idle = (now - started) - sched[0] - sched[1]  # neither running nor waiting for a CPU
            reply["idle_s"] = max(idle, 0.0)
            if idle > idle_allowed:
                return stop("timeout", f"the candidate spent {idle:.1f} s neither running nor waiting for a CPU "
                                       f"(asleep, blocked or stopped), over its allowance of {idle_allowed:.1f} s "
                                       f"({where})")
            # Time off the CPU accrues no faster than the wall clock: waiting for what is left cannot overshoot.
            off_left = idle_allowed - idle
        else:
            wall_allowed = wall_extra + wall_factor * cpu_allowed
            wall = now - wall_at_start
            if wall > wall_allowed:
                return stop("timeout", f"the candidate ran {wall:.1f} s of wall-clock time, over its backstop of "
                                       f"{wall_allowed:.1f} s for {where} (sleeping or blocked?)")
            off_left = wall_allowed - wall
        # It cannot use more CPU than wall-clock time: waiting for the CPU time left cannot overshoot.
        left = min(cpu_allowed - used, off_left)
        if not select.select([fd], [], [], max(left, 0.001))[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return stop("crashed", None)  # how it ended (exit code, signal) is added by the caller
        buffer += chunk
        try:
            if parse():
                return None
        except Protocol as exc:
            return stop("crashed", f"the candidate's process wrote a malformed result ({exc})")
        except SandboxFailure as exc:
            reply["outcome"], reply["detail"] = "sandbox_failure", str(exc)
            return None
        if buffer:
            # An honest candidate writes each record at once (they are under PIPE_BUF, so the pipe delivers
            # them whole); a record dribbled out byte by byte is read at most a thousand times a second, so
            # the candidate cannot make this supervisor spin.
            time.sleep(0.001)


class SandboxFailure(Exception):
    """The candidate process could not lock itself down (before any candidate code ran)."""


# ---- the candidate process ---------------------------------------------------------------------------


def candidate(request: dict, out: int, options: Options, capabilities: dict, scratch_writable: bool,
              supervisor: int) -> None:
    """The forked child: lock itself down, compile (our code, under its own clock and limits), then load and
    call the candidate."""
    send = Sender(out)
    try:
        lock_down(request, out, options, capabilities, scratch_writable, supervisor)
    except BaseException as exc:  # noqa: BLE001 - reported, and nothing of the candidate runs
        send.record(b"F", describe(exc))
        return
    send.raw(b"K")
    code = request.pop("code")
    try:
        tree = ast.parse(code, "<candidate>")
        names = function_names(tree)
        compiled = compile(tree, "<candidate>", "exec")
    except MemoryError:
        send.raw(b"X")
        return
    except Exception as exc:  # noqa: BLE001 - whatever the compiler raises, the program does not compile
        send.record(b"S", describe(exc))
        return
    del tree, code
    if not names:
        send.raw(b"N")
        return
    listed, kept = b"", 0
    for name in names[:MAX_NAMES]:  # as many as fit in one record (a name may be long, and not ASCII)
        entry = (b"\n" if kept else b"") + name[:MAX_NAME_CHARS].encode("utf-8", "replace")
        if len(listed) + len(entry) > 60_000:
            break
        listed, kept = listed + entry, kept + 1
    names = names[:kept]
    send.raw(b"C" + len(listed).to_bytes(2, "big") + listed)  # the last record before untrusted code runs
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        exec(compiled, namespace)
    except MemoryError:
        send.raw(b"X")
        return
    except BaseException as exc:  # noqa: BLE001 - the candidate's module failed, whatever it raised
        send.record(b"A", describe(exc))
        return
    index = pick(namespace, names)
    if index is None:
        send.record(b"A", f"NameError: no callable {names[0][:MAX_NAME_CHARS]} after loading the module")
        return
    send.raw(b"L" + index.to_bytes(1, "big"))
    answer(namespace[names[index]], request["batches"], request["chunk_sizes"], send)


def pick(namespace: dict, names: list[str], *, enumerate=enumerate, callable=callable, min=min) -> int | None:
    """The index of the first of `names` that the loaded module bound to a callable (builtins bound
    before the candidate's module ran, which may have replaced them)."""
    for index, name in enumerate(names):
        if callable(namespace.get(name)):
            return min(index, 255)
    return None


def lock_down(request: dict, out: int, options: Options, capabilities: dict, scratch_writable: bool,
              supervisor: int) -> None:
    os.setsid()  # alone in its session and process group
    # Nothing but its result pipe and /dev/null as stdio: not the orchestrator's channel.
    os.closerange(3, out)
    os.closerange(out + 1, 1 << 20)
    cpu = int(request["cpu_backstop_s"]) + 1
    limits = [
        (resource.RLIMIT_AS, request["address_space_bytes"]),
        (resource.RLIMIT_CPU, cpu),  # backstop; the supervisor stops it long before
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, max(request["scratch_bytes"], 1)),
        (resource.RLIMIT_NOFILE, request["nofile"]),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
        (resource.RLIMIT_SIGPENDING, 64),
        (resource.RLIMIT_RTPRIO, 0),
    ]
    for kind, value in limits:
        hard = cpu + 1 if kind == resource.RLIMIT_CPU else value
        resource.setrlimit(kind, (value, hard))
    uid = request["uid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # clears every capability
    jail.drop_capabilities()  # and in bubblewrap's user namespace, where the uid stays
    # No child processes or threads (the seccomp filter refuses them too).
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    jail.set_parent_death_signal(signal.SIGKILL)  # after the uid change, which clears it
    if os.getppid() != supervisor:
        raise RuntimeError("the supervisor is gone")
    os.chdir(options.scratch)  # the tmpfs mounted after we got here, or the read-only empty directory
    pid = os.getpid()
    if capabilities["landlock"]:
        # Of /proc, only its own memory map and status: not mountinfo (host paths), nothing host-wide.
        readable = [*options.readable, f"/proc/{pid}/maps", f"/proc/{pid}/status", f"/proc/{pid}/stat"]
        writable = ["/dev/null", *([options.scratch] if scratch_writable else [])]
        jail.landlock_restrict(capabilities["landlock"], readable, writable)
    if capabilities["seccomp"] is None:
        raise RuntimeError("no seccomp filter for this machine")
    jail.load_seccomp(pid, capabilities["seccomp"])


class Sender:
    """Writes records. Everything it uses is bound before the candidate runs, so a candidate that
    replaces builtins or patches `os` does not break its own reporting by accident."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.write = os.write
        self.memoryview = memoryview
        self.len = len

    def raw(self, data: bytes) -> None:
        view = self.memoryview(data)
        while view:
            view = view[self.write(self.fd, view):]

    def record(self, tag: bytes, text: str) -> None:
        body = text.encode("utf-8", "replace")[:MAX_ERROR_BYTES]
        self.raw(tag + self.len(body).to_bytes(2, "big") + body)

    def marks(self, marks: str) -> None:
        body = marks.encode("ascii")
        self.raw(b"M" + self.len(body).to_bytes(2, "big") + body)


def answer(function, batches: list[list], chunk_sizes: list[int], send: Sender, *, len=len, type=type, bool=bool,
           int=int, BaseException=BaseException, MemoryError=MemoryError, chunk_bounds=chunk_bounds) -> None:
    """Call the candidate on every input and send one mark per input, chunk by chunk. Builtins are bound
    as defaults (at import, before any candidate) so that a candidate replacing them changes nothing."""
    for inputs in batches:
        first_error = True
        for start, stop in chunk_bounds(len(inputs), chunk_sizes):
            marks = []
            mark = marks.append
            for x in inputs[start:stop]:
                try:
                    value = function(x)
                except MemoryError:
                    send.raw(b"X")
                    return
                except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... count as wrong
                    mark("E")
                    if first_error:
                        first_error = False
                        send.record(b"R", describe(exc))
                    continue
                kind = type(value)
                if kind is bool or kind is int:  # the common case, inlined for speed
                    mark("0" if value == 0 else "1")
                    continue
                label = coerce(value)
                if label is not None:
                    mark("01"[label])
                    continue
                mark("I")
                if first_error:
                    first_error = False
                    send.record(b"R", f"invalid return value of type {kind.__name__} (not a 0/1 label)")
            send.marks("".join(marks))


def coerce(value, type=type, isinstance=isinstance, bool=bool, int=int, float=float, str=str,
           ValueError=ValueError, sys=sys) -> int | None:
    """0 or 1 for an accepted prediction, None otherwise. Exact types only, never truthiness, so an
    object whose __eq__ or __bool__ lies is invalid rather than believed."""
    kind = type(value)
    if kind not in (bool, int, float, str):
        numpy = sys.modules.get("numpy")
        if numpy is None or not isinstance(value, numpy.generic):
            return None
        value = value.item()  # a numpy scalar becomes the matching Python scalar, checked again below
        kind = type(value)
    if kind is bool:
        return 1 if value is True else 0
    if kind is int:
        return 0 if value == 0 else 1
    if kind is str:
        text = value.strip().lower()
        if text in ("1", "true"):
            return 1
        if text in ("0", "false"):
            return 0
        try:
            value = float(text)
        except ValueError:
            return None
        kind = float
    if kind is float:
        if value != value:  # NaN
            return None
        return 0 if value == 0 else 1
    return None


if __name__ == "__main__":
    main(sys.argv[1:])

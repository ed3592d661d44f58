"""The sandbox's zygote: the only program that runs inside the sandbox. Standard library only.

One zygote per warm worker, started by `sandbox.py` as

    python -S -s -P worker.py --scratch DIR [--drop-to UID] [--path DIR]...

It imports a few common modules once, then serves requests from the orchestrator (stdin) and answers
on stdout. Every candidate runs in a fresh fork of the zygote, so whatever one candidate does to its
interpreter (replacing builtins, leaking globals, exiting, crashing) dies with that fork and cannot reach
the next one. The zygote receives code and inputs, never a label: it returns, per input, a prediction
already coerced to 0/1 or an error mark; scoring happens outside.

Frames between orchestrator and zygote: an 8-byte big-endian length, then the body.
  request  two frames: a JSON header {"code": str, "sizes": [int, ...], "encoding": "lines" | "json",
           "timeout_s": float, "memory_mb": int, "max_output": int}, then the inputs of all batches in
           order, UTF-8: joined by newlines ("lines", the fast path for strings) or a JSON list ("json")
  reply    JSON {"output": str, "exit": int | null, "signal": int | null, "timed_out": bool,
           "overflow": bool, "seconds": float}

`output` is what the candidate's fork wrote on its result pipe: JSON lines, untrusted (the candidate
owns that process and could write anything), validated outside by sandbox.py:
  {"event": "syntax_error" | "load_error" | "memory", "error": str}   the candidate stopped there
  {"event": "no_function"}
  {"event": "function", "name": str}                                 compiled and loaded
  {"event": "marks", "batch": int, "marks": str}                     a chunk of per-input marks
  {"event": "error", "batch": int, "error": str}                     first per-input error of a batch
  {"event": "done"}
Marks: "0"/"1" a prediction, "E" the call raised, "I" it returned something that is not a valid label.
"""

import ast
import contextlib
import ctypes
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import time

# Imported once here so that candidates importing them pay nothing (and so that they still import
# after the fork drops to an unprivileged user that may not be able to read the interpreter's files).
PRELOADED = (
    "array", "bisect", "collections", "dataclasses", "decimal", "fractions", "functools", "hashlib",
    "heapq", "itertools", "math", "operator", "random", "re", "statistics", "string", "struct",
    "typing", "zlib",
)

CHUNK_ROWS = 1000  # marks are sent in chunks, so rows finished before a timeout still count
MAX_ERROR_CHARS = 300
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
LIBC = ctypes.CDLL(None)
DEF_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


def main(argv: list[str]) -> None:
    scratch, drop_to, paths = parse_args(argv)
    sys.path.extend(paths)
    for name in PRELOADED:
        __import__(name)
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the orchestrator's spawner thread died: so do we
    # Not dumpable: a candidate running as the same user cannot ptrace us or read our /proc/<pid>/mem.
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # The candidates' stdio goes nowhere; the orchestrator channel moves to private descriptors.
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.chdir(scratch)
    while True:
        request = read_request(requests)
        if request is None:
            return  # the orchestrator closed the channel
        reply = run_candidate(request, scratch, drop_to, keep_out=(requests, replies))
        write_frame(replies, reply)
        if not wipe(scratch):
            return  # something left behind that cannot be removed: retire, the pool starts a fresh zygote


def parse_args(argv: list[str]) -> tuple[str, int | None, list[str]]:
    scratch, drop_to, paths = None, None, []
    args = iter(argv)
    for flag in args:
        value = next(args)
        if flag == "--scratch":
            scratch = value
        elif flag == "--drop-to":
            drop_to = int(value)
        elif flag == "--path":
            paths.append(value)
        else:
            raise SystemExit(f"worker.py: unknown argument {flag}")
    if scratch is None:  # no default: the scratch directory is emptied after every candidate
        raise SystemExit("worker.py: --scratch DIR is required")
    return scratch, drop_to, paths


def read_exact(fd: int, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def read_frame(fd: int) -> bytes | None:
    header = read_exact(fd, 8)
    return None if header is None else read_exact(fd, int.from_bytes(header, "big"))


def read_request(fd: int) -> dict | None:
    header, blob = read_frame(fd), read_frame(fd)
    if header is None or blob is None:
        return None
    request = json.loads(header)
    inputs = json.loads(blob) if request["encoding"] == "json" else blob.decode().split("\n")
    request["batches"], start = [], 0
    for size in request["sizes"]:
        request["batches"].append(inputs[start:start + size])
        start += size
    return request


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_frame(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    write_all(fd, len(body).to_bytes(8, "big") + body)


def wipe(scratch: str) -> bool:
    """Empty the scratch directory between candidates; False when that is impossible."""
    try:
        for entry in os.scandir(scratch):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
    except OSError:
        return False
    return True


def run_candidate(request: dict, scratch: str, drop_to: int | None, keep_out: tuple[int, int]) -> dict:
    """Fork, run the candidate in the child, collect its result lines under the wall-clock limit."""
    results_read, results_write = os.pipe()
    zygote = os.getpid()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(results_read)
            for fd in keep_out:
                os.close(fd)
            candidate_process(request, results_write, drop_to, zygote)
        finally:
            os._exit(0)
    os.close(results_write)
    deadline = started + request["timeout_s"]
    output, timed_out, overflow = bytearray(), False, False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([results_read], [], [], left)[0]:
            timed_out = True
            break
        chunk = os.read(results_read, 1 << 16)
        if not chunk:
            break  # the candidate finished (or closed its pipe, which ends it too)
        output += chunk
        if len(output) > request["max_output"]:
            overflow = True
            break
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)  # whatever state it is in, it is over
    _, status = os.waitpid(pid, 0)
    os.close(results_read)
    return {
        "output": output.decode("utf-8", "replace"),
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
        "overflow": overflow,
        "seconds": time.monotonic() - started,
    }


def candidate_process(request: dict, out: int, drop_to: int | None, zygote: int) -> None:
    """The forked child: lock itself down, then compile, load and call the candidate."""
    limit_bytes = request["memory_mb"] * 1024 * 1024
    cpu_s = math.ceil(request["timeout_s"]) + 1  # backstop; the zygote's wall clock kills first
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    resource.setrlimit(resource.RLIMIT_DATA, (limit_bytes, limit_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
    if drop_to is not None:
        os.setgroups([])
        os.setgid(drop_to)
        os.setuid(drop_to)
    # No child processes: fork/clone fail (a non-root user is always at or over a limit of 0).
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    # After the uid change, which clears it: the zygote dies, so does this candidate.
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote:
        return  # the zygote is already gone
    send = Sender(out)
    try:
        tree = ast.parse(request["code"])
        compiled = compile(tree, "<candidate>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        send("syntax_error", error=describe(exc))
        return
    namespace = {"__name__": "candidate", "__builtins__": __builtins__}
    try:
        exec(compiled, namespace)
    except MemoryError:
        send.out_of_memory()
        return
    except BaseException as exc:  # noqa: BLE001 - the candidate's module failed, whatever it raised
        send("load_error", error="at load: " + describe(exc))
        return
    function, name = choose_function(tree, namespace)
    if function is None:
        send("no_function")
        return
    send("function", name=name)
    answer(function, request["batches"], send)


class Sender:
    """Writes result lines. Everything it uses is bound before the candidate runs (no `json.dumps`,
    whose Python half looks builtins up at call time), so a candidate that replaces builtins or patches
    `json`/`os` does not break its own reporting by accident."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.quote = json.encoder.encode_basestring_ascii  # str -> JSON string literal, in C
        self.write = os.write
        self.type, self.int, self.str = type, int, str
        # Prepared in advance: reporting an out-of-memory state must not need memory.
        self.memory_line = b'{"event": "memory", "error": "MemoryError"}\n'

    def __call__(self, event: str, **fields: int | str) -> None:
        """One line {"event": event, field: value, ...}; values are ints or strings."""
        parts = ['{"event": ', self.quote(event)]
        for key, value in fields.items():
            text = self.str(value) if self.type(value) is self.int else self.quote(value)
            parts.append(f', "{key}": {text}')
        parts.append("}\n")
        self.send_bytes("".join(parts).encode())

    def out_of_memory(self) -> None:
        self.send_bytes(self.memory_line)

    def send_bytes(self, data: bytes, memoryview=memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[self.write(self.fd, view):]


def answer(function, batches: list[list], send: Sender, *, len=len, range=range, type=type, enumerate=enumerate,
           bool=bool, int=int, BaseException=BaseException, MemoryError=MemoryError) -> None:
    """Call the candidate on every input and send one mark per input, CHUNK_ROWS at a time.
    Builtins are bound as defaults (at import, before any candidate) for the same reason as Sender."""
    for index, inputs in enumerate(batches):
        first_error = None
        for start in range(0, len(inputs), CHUNK_ROWS):
            marks = []
            mark = marks.append
            for x in inputs[start:start + CHUNK_ROWS]:
                try:
                    value = function(x)
                except MemoryError:
                    send.out_of_memory()
                    return
                except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt... count as wrong
                    mark("E")
                    if first_error is None:
                        first_error = describe(exc)
                        send("error", batch=index, error=first_error)
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
                if first_error is None:
                    first_error = f"invalid return value of type {kind.__name__} (not a 0/1 label)"[:MAX_ERROR_CHARS]
                    send("error", batch=index, error=first_error)
            send("marks", batch=index, marks="".join(marks))
    send("done")


def choose_function(tree: ast.Module, namespace: dict, *, callable=callable, isinstance=isinstance):
    """`f` when it is callable, else the first top-level `def`."""
    if callable(namespace.get("f")):
        return namespace["f"], "f"
    for node in tree.body:
        if isinstance(node, DEF_NODES) and callable(namespace.get(node.name)):
            return namespace[node.name], node.name
    return None, None


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


def describe(exc: BaseException, type=type, BaseException=BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001 - a hostile __str__
        text = type(exc).__name__
    return text[:MAX_ERROR_CHARS]


if __name__ == "__main__":
    main(sys.argv[1:])

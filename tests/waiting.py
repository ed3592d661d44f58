"""Waiting in tests without wall-clock guesses: wait for an event, and scale a speed bound by the load.

A test that checks "this happens within N seconds" states N for an idle machine and asserts against
`scaled(N)`: N times how much slower than a free core this process runs right now (a short busy loop's
wall time over its CPU time), so a busy machine stretches the bound instead of failing the test, while an
idle one keeps it as tight as written. Anything the test waits for (a file, a log line, a process gone, a
server done with its connections) is polled with `wait_until`, never slept for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
SAMPLE_S = 0.05  # CPU time of one load sample: long enough to span several scheduler slices


def slowdown(sample_s: float = SAMPLE_S) -> float:
    """How many times slower than one free core this thread gets the CPU now (>= 1.0)."""
    wall, cpu = time.perf_counter(), time.thread_time()
    while time.thread_time() - cpu < sample_s:
        pass
    return max(1.0, (time.perf_counter() - wall) / (time.thread_time() - cpu))


_last = [float("-inf"), 1.0]  # when the load was last sampled (monotonic) and what it was


def scaled(seconds: float) -> float:
    """`seconds` (a bound that holds on an idle machine) stretched by the present load (sampled at most once
    a second, so a helper that polls can call this every time)."""
    now = time.monotonic()
    if now - _last[0] > 1.0:
        _last[:] = [now, slowdown()]
    return seconds * _last[1]


def wait_until(check: Callable[[], T], what: str, timeout_s: float = 60.0, poll_s: float = 0.02) -> T:
    """Poll `check` until it returns something truthy and return that; fail naming `what` after
    scaled(timeout_s). The timeout guards against a hang only: it is not what the test measures."""
    deadline = time.monotonic() + scaled(timeout_s)
    while not (value := check()):
        assert time.monotonic() < deadline, f"gave up waiting for {what} after {timeout_s:g} s (scaled)"
        time.sleep(poll_s)
    return value


# TCP states in /proc/net/tcp that mean the server still holds a connection it has not finished with:
# ESTABLISHED, SYN_RECV (being accepted), CLOSE_WAIT (the client is gone, the server has not closed yet).
_SERVER_BUSY = {"01", "03", "08"}


def open_connections(port: int) -> int:
    """Connections to a local TCP server on `port` that it has not closed yet, accepted or still queued.

    A server that has none has read (and answered or dropped) every request that reached it, including the
    requests of a client that was killed with them in flight."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if int(local.rsplit(":", 1)[1], 16) == port and state in _SERVER_BUSY:
                count += 1
    return count

# An honest parity program (fn_a) that stalls without using CPU (issue 20): __MECHANISM__ is "sleep"
# (time.sleep), "select" (on its own pipe, which nobody writes), "futex" (a lock it already holds),
# "pause" (signal.pause), "sigstop" (it stops itself) or "sleep_per_input" (a correct answer after
# 0.099 s of sleep per input). It must end as a timeout within its wall bound.
import os
import select
import signal
import threading
import time

MECHANISM = "__MECHANISM__"
LOCK = threading.Lock()


def stall():
    if MECHANISM == "sleep":
        time.sleep(3600)
    elif MECHANISM == "select":
        read, _ = os.pipe()
        select.select([read], [], [])
    elif MECHANISM == "futex":
        LOCK.acquire()
        LOCK.acquire()
    elif MECHANISM == "pause":
        signal.pause()
    elif MECHANISM == "sigstop":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif MECHANISM == "sleep_per_input":
        time.sleep(0.099)


def f(x):
    stall()
    return x.count("1") % 2

# Sends SIGKILL to every process it is allowed to signal.
import os
import signal


def f(x):
    os.kill(-1, signal.SIGKILL)
    return 1

# Tries to read files of the host that candidates must never see: the source of the target functions
# in the checkout, the dataset files, the orchestrator's environment and the home directory (paths in
# __PATHS__, filled in by the test). Answers parity XOR (it read any of them).
import os

PATHS = __PATHS__


def readable(path):
    try:
        if os.path.isdir(path):
            return bool(os.listdir(path))
        with open(path, "rb") as handle:
            return bool(handle.read(1))
    except OSError:
        return False


LEAKS = [path for path in PATHS if readable(path)]


def f(x):
    if LEAKS:
        raise RuntimeError("read: " + ", ".join(LEAKS))
    return x.count("1") % 2

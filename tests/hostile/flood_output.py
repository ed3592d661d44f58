# Floods stdout and stderr, then answers correctly (parity): the flood must be discarded, not fatal.
import os
import sys

CHUNK = "y" * (1 << 20)


def f(x):
    for _ in range(8):
        sys.stdout.write(CHUNK)
        sys.stderr.write(CHUNK)
        os.write(1, CHUNK.encode())
    return x.count("1") % 2

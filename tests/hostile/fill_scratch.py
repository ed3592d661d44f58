# Writes into its scratch until something refuses, to pin memory in a tmpfs beyond the candidate's
# share. Answers parity XOR (it wrote more than LIMIT_MB).
import os

LIMIT_MB = 64


def fill():
    written = 0
    block = b"x" * (1 << 20)
    try:
        with open("fill.bin", "wb", buffering=0) as handle:
            while written < (512 << 20):
                written += handle.write(block)
    except OSError:
        pass
    return written


WRITTEN = fill()


def f(x):
    return (x.count("1") % 2) ^ (WRITTEN > LIMIT_MB << 20)

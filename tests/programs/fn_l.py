# sha256_parity: odd popcount of SHA-256 of the ASCII string
import hashlib


def f(x):
    digest = hashlib.sha256(x.encode("ascii")).digest()
    return sum(bin(byte).count("1") for byte in digest) % 2

# prime_decimal: the L-digit number is prime (Miller-Rabin with fixed bases: no known counterexample
# at these sizes; a helper and a module-level import on purpose)
import math

WITNESSES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def probably_prime(n):
    if n < 2:
        return False
    if n < 10**6:  # small: plain trial division
        return all(n % p for p in range(2, math.isqrt(n) + 1))
    for p in WITNESSES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in WITNESSES:
        y = pow(a, d, n)
        if y in (1, n - 1):
            continue
        for _ in range(s - 1):
            y = y * y % n
            if y == n - 1:
                break
        else:
            return False
    return True


def f(x):
    return int(probably_prime(int(x)))

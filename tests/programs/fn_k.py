# prime_decimal_tf_check: the same label as prime_decimal (only the negatives differ)
from random import Random

_rng = Random(7)  # module-level state, on purpose: random witnesses from a fixed seed


def is_prime(n, rounds=6):
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0 or n % 3 == 0:
        return False
    d, s = n - 1, 0
    while not d & 1:
        d >>= 1
        s += 1
    for a in [2, 3, 5, 7] + [_rng.randrange(2, n - 1) for _ in range(rounds)]:
        y = pow(a, d, n)
        if y == 1 or y == n - 1:
            continue
        for _ in range(s - 1):
            y = pow(y, 2, n)
            if y == n - 1:
                break
        else:
            return False
    return True


def f(x):
    return 1 if is_prime(int(x)) else 0

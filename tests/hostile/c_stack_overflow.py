# Lift the recursion guard, then recurse in C (comparing two deeply nested lists): the C stack overflows.
import sys

sys.setrecursionlimit(10**8)
left, right = [], []
for _ in range(10**5):
    left, right = [left], [right]


def f(x):
    return int(left == right)

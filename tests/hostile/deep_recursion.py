def down(n):
    return down(n + 1) + 1


def f(x):
    return down(0)

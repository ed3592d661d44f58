# patternmatch1: the substring 10101010 occurs
PATTERN = "10" * 4


def f(x):
    return 1 if PATTERN in x else 0

# automata_parity: parity of the cells after one Rule-30 step with 0 padding at both ends
RULE = 30


def step(cells):
    padded = [0] + cells + [0]
    return [(RULE >> (4 * padded[i - 1] + 2 * padded[i] + padded[i + 1])) & 1 for i in range(1, len(padded) - 1)]


def f(x):
    return sum(step([int(c) for c in x])) % 2

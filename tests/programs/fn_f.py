# parity_rand_10: XOR of the bits at ten fixed positions (the paper's table, keyed by length)
from functools import reduce
from operator import xor

TABLE = {
    20: "2 14 18 15 1 10 0 4 6 11",
    24: "6 15 22 2 10 19 3 18 14 17",
    25: "17 12 2 0 22 20 21 6 8 18",
    30: "12 0 6 25 8 15 10 18 16 23",
    40: "22 9 32 15 0 3 8 18 14 13",
    50: "42 17 30 34 20 25 0 8 36 18",
    60: "42 35 52 55 22 15 40 30 26 47",
    80: "22 21 60 50 6 40 48 64 30 66",
    100: "42 96 62 98 46 95 60 24 78 16",
}
POSITIONS = {length: [int(p) for p in row.split()] for length, row in TABLE.items()}


def bits_at(x, positions):
    return [x[p] == "1" for p in positions]


def f(x):
    return int(reduce(xor, bits_at(x, POSITIONS[len(x)]), False))

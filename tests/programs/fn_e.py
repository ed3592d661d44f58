# parity_rand_3: XOR of the bits at three fixed positions (the paper's table, keyed by length)
FIRST_THREE = {
    20: (2, 14, 18), 24: (6, 15, 22), 25: (17, 12, 2), 30: (12, 0, 6), 40: (22, 9, 32),
    50: (42, 17, 30), 60: (42, 35, 52), 80: (22, 21, 60), 100: (42, 96, 62),
}


def f(x):
    value = 0
    for position in FIRST_THREE[len(x)]:
        value ^= int(x[position])
    return value

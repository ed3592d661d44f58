# parity_first_half: odd number of ones among the first floor(L/2) bits
def f(x):
    half = x[: len(x) // 2]
    return sum(1 for bit in half if bit == "1") % 2

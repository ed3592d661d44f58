# parity_all: odd number of ones
def f(x):
    return x.count("1") % 2

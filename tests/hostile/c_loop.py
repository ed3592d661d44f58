# A loop in C: no bytecode boundary where Python could check an alarm.
def f(x):
    return sum(range(10**12)) % 2

# patternmatch2: the substring 00111111 occurs (a scan instead of `in`, on purpose)
def f(x):
    target = "00" + "1" * 6
    for start in range(len(x) - len(target) + 1):
        if x[start:start + len(target)] == target:
            return True
    return False

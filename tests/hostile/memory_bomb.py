# Grabs memory until something gives (the allocations are not touched, so this is quick).
def f(x):
    hoard = []
    while True:
        hoard.append(bytes(256 << 20))

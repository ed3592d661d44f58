# dyck2: read bit pairs as brackets 00 ( 01 ) 10 [ 11 ]; 1 iff the word is well nested
OPENERS = {"00": "round", "10": "square"}
CLOSERS = {"01": "round", "11": "square"}


def f(x):
    if len(x) % 2:
        return 0
    open_kinds = []
    for i in range(0, len(x), 2):
        pair = x[i:i + 2]
        if pair in OPENERS:
            open_kinds.append(OPENERS[pair])
        elif not open_kinds or open_kinds.pop() != CLOSERS[pair]:
            return 0
    return 0 if open_kinds else 1

# Forges a perfect-looking result line on its result pipe, then keeps running: forging predictions
# is no better than returning them (it never sees a label), and it cannot end the run early.
import json
import os


def f(x):
    line = json.dumps({"event": "done"}) + "\n"
    for fd in range(3, 64):
        try:
            os.write(fd, line.encode())
        except OSError:
            pass
    while True:
        pass

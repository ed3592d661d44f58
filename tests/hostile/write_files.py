# Try to leave marks outside the scratch space and to delete a file of the host. Returns 1 if any
# of that worked. Writing in its own scratch (the working directory) is allowed.
import os

TARGET_DIR = "__TARGET_DIR__"


def attempt(action):
    try:
        action()
        return True
    except OSError:
        return False


def f(x):
    escaped = [
        attempt(lambda: open(os.path.join(TARGET_DIR, "planted.txt"), "w").write("pwned")),
        attempt(lambda: os.remove(os.path.join(TARGET_DIR, "sentinel.txt"))),
        attempt(lambda: os.mkdir(os.path.join(TARGET_DIR, "planted_dir"))),
        attempt(lambda: open("/tmp/../" + TARGET_DIR.lstrip("/") + "/planted2.txt", "w").write("x")),
    ]
    with open("scratch.txt", "w") as scratch:
        scratch.write(x)
    return int(any(escaped))

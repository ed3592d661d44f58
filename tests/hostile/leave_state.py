# Tries to leave files wherever it can for the next candidate to find. Returns 1 if it finds a file
# left by an earlier run of itself (so its second run reports any leak).
import os

PLACES = ["/tmp", ".", os.environ.get("HOME", "/tmp"), "/dev/shm", "/dev", "/", "/opt", "/var/tmp", "/run"]
NAME = "llm-erm-leftover"


def f(x):
    found = any(os.path.exists(os.path.join(place, NAME)) for place in PLACES)
    for place in PLACES:
        try:
            with open(os.path.join(place, NAME), "w") as handle:
                handle.write("left by an earlier candidate")
        except OSError:
            pass
    return int(found)

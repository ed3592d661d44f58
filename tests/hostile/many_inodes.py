# Creates as many empty directories and files as it can in its scratch: no tmpfs blocks, so a byte limit
# alone does not bound them (each costs kernel memory), and a wipe of 800 000 of them outlasts the next
# candidate's limit. Answers parity XOR (it created more than LIMIT), so it scores 1.0 only when the
# inode count is bounded.
import os

LIMIT = 5000
TRIES = 200_000


def plant():
    made = 0
    try:
        for i in range(TRIES):
            if i % 2:
                os.mkdir(f"d{i}")
            else:
                os.close(os.open(f"f{i}", os.O_CREAT | os.O_WRONLY, 0o600))
            made += 1
    except OSError:
        pass
    return made


MADE = plant()


def f(x):
    return (x.count("1") % 2) ^ (MADE > LIMIT)

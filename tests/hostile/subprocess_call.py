import subprocess


def f(x):
    done = subprocess.run(["/bin/sh", "-c", "echo pwned"], capture_output=True)
    return int(b"pwned" in done.stdout)

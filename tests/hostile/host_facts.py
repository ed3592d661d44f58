# Reads what it can of the host (issue 20): RAM, uptime, host-wide process counts, mount table (host
# paths), other processes, and (__STRICT__, bubblewrap mode) any host path or file beyond the
# interpreter's libraries. An honest parity program (fn_a) that raises, naming what it read, when
# anything got through.
import ctypes
import glob
import os
import sys

STRICT = "__STRICT__" == "True"
HOST_PATHS = [path for path in "__HOST_PATHS__".split("|") if path]  # noqa: SIM905 - filled in by the test
PHYS_PAGES = int("__PHYS_PAGES__")  # the host's, for comparison (glibc computes it from sysinfo, which is refused)
PROC = ["/proc/meminfo", "/proc/uptime", "/proc/loadavg", "/proc/stat", "/proc/self/mountinfo",
        "/proc/self/mounts", "/proc/1/cmdline", "/proc/vmstat", "/proc/sys/kernel/pid_max"]
NOT_MOUNTED = ["/usr/bin", "/usr/share", "/usr/include", "/etc/passwd", "/home", "/root", "/var", "/sys/kernel"]


def leaks():
    found = []
    for path in PROC:
        try:
            with open(path, "rb") as handle:
                handle.read(1)
            found.append(path)
        except OSError:
            pass
    buffer = ctypes.create_string_buffer(256)
    if ctypes.CDLL(None).sysinfo(buffer) == 0:
        found.append("sysinfo")
    try:
        if os.sysconf("SC_PHYS_PAGES") == PHYS_PAGES:
            found.append("SC_PHYS_PAGES")
    except (OSError, ValueError):
        pass
    if STRICT:
        seen = [sys.executable, sys.prefix, sys.base_prefix, os.__file__, *sys.path, os.environ.get("PATH", ""),
                os.environ.get("LD_LIBRARY_PATH", "")]
        for directory in sys.path:  # what an install left behind: an editable finder, .pth, direct_url.json
            for name in glob.glob(directory + "/__editable__*") + glob.glob(directory + "/*.pth") + \
                    glob.glob(directory + "/*.dist-info/direct_url.json"):
                try:
                    with open(name, errors="replace") as handle:
                        seen.append(handle.read())
                except OSError:
                    pass
        found += [f"host path {path}" for path in HOST_PATHS if any(path in text for text in seen)]
        found += [path for path in NOT_MOUNTED if os.path.exists(path)]
    return found


LEAKS = None


def f(x):
    global LEAKS
    if LEAKS is None:
        LEAKS = leaks()
    if LEAKS:
        raise RuntimeError("read " + ", ".join(LEAKS))
    return x.count("1") % 2

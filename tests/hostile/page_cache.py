# Leaves its answers in the host's page cache, or (as the reader) answers from what an earlier candidate
# left there (issue 20). __ROLE__ is "write" or "read", __MECHANISM__ "fadvise" (the writer evicts with
# posix_fadvise(DONTNEED) and loads with reads; the reader asks preadv2(RWF_NOWAIT) whether a page is
# cached) or "mincore" (the writer also tries MADV_PAGEOUT, loads with MADV_WILLNEED on a mapping and a
# touch; the reader asks mincore()).
# One page of the largest library file it can read stands for each input: resident = label 1. The writer
# is an honest parity program (fn_a); the reader computes nothing and answers 1 only for a page it sees
# resident (0 when it cannot tell), so it scores exactly 0.5 on a balanced split when it sees nothing.
import contextlib
import ctypes
import glob
import hashlib
import mmap
import os
import sys

ROLE = "__ROLE__"
MECHANISM = "__MECHANISM__"
PAGE = 4096
MADV_WILLNEED, MADV_PAGEOUT = 3, 21
libc = ctypes.CDLL(None, use_errno=True)
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def largest_library():
    found = []
    for pattern in (sys.prefix + "/lib/libpython3*.so*", sys.prefix + "/lib/python3*/lib-dynload/*.so",
                    "/usr/lib/*-linux-gnu/*.so*"):
        for path in glob.glob(pattern):
            with contextlib.suppress(OSError):
                found.append((os.path.getsize(path), os.path.basename(path), path))
    return max(found)[2]


FD = os.open(largest_library(), os.O_RDONLY)
PAGES = os.fstat(FD).st_size // PAGE
MAP = mmap.mmap(FD, PAGES * PAGE, prot=mmap.PROT_READ)
MAP_ADDRESS = ctypes.c_void_p.from_address(id(MAP) + 16).value  # mmap_object->data (CPython's layout)


def page_of(x):
    return int.from_bytes(hashlib.sha256(x.encode()).digest()[:4], "big") % PAGES


def write(x, label):
    page = page_of(x)
    if MECHANISM == "fadvise":
        with contextlib.suppress(OSError):
            os.posix_fadvise(FD, page * PAGE, PAGE, os.POSIX_FADV_DONTNEED)
        if label:
            os.pread(FD, PAGE, page * PAGE)
        return
    for advice, wanted in ((MADV_PAGEOUT, False), (MADV_WILLNEED, True)):
        if label == wanted:
            with contextlib.suppress(OSError):
                MAP.madvise(advice, page * PAGE, PAGE)
    if not label:
        with contextlib.suppress(OSError):
            os.posix_fadvise(FD, page * PAGE, PAGE, os.POSIX_FADV_DONTNEED)
    else:
        MAP[page * PAGE]


def resident(x):
    page = page_of(x)
    if MECHANISM == "fadvise":
        try:
            return os.preadv(FD, [bytearray(PAGE)], page * PAGE, os.RWF_NOWAIT) > 0
        except OSError:
            return False
    vec = ctypes.create_string_buffer(1)
    if libc.mincore(MAP_ADDRESS + page * PAGE, PAGE, vec) != 0:
        return False
    return vec.raw[0] & 1 == 1


def f(x):
    if ROLE == "write":
        label = x.count("1") % 2
        write(x, label)
        return label
    return int(resident(x))

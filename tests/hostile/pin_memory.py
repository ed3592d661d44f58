# Tries to hold more memory than its limit (__CAP_MB__ MB) through a mechanism that the address-space
# limit does not count: SysV shared memory, memfd, a tmpfs in a new user namespace, shared anonymous
# memory, locked memory, pipes, threads, inotify watches, POSIX timers. Answers parity XOR (it held more
# than the cap), so it scores 1.0 only when the mechanism is bounded or refused.
import ctypes
import mmap
import os

MECHANISM = "__MECHANISM__"
CAP = __CAP_MB__ << 20
TARGET = CAP * 3 // 2
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.shmat.restype = ctypes.c_void_p
progress = [0]  # bytes held so far, kept when an attempt fails half-way


def touch(address, size):
    for offset in range(0, size, 4096):
        ctypes.memset(address + offset, 1, 1)


def sysv_shm():
    held = 0
    while held < TARGET:
        shmid = libc.shmget(0, 64 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
        if shmid < 0:
            break
        address = libc.shmat(shmid, None, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            break
        touch(address, 64 << 20)
        libc.shmdt(ctypes.c_void_p(address))  # detached: no longer in the address space, still held
        held += 64 << 20
        progress[0] = held
    return held


def memfd():
    held = 0
    fds = []
    while held < TARGET:
        fd = os.memfd_create("pin")
        fds.append(fd)
        os.ftruncate(fd, 64 << 20)
        block = b"x" * (1 << 20)
        for _ in range(64):
            os.write(fd, block)
        held += 64 << 20
        progress[0] = held
    return held


def userns_tmpfs():
    CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        return 0
    os.makedirs("mnt", exist_ok=True)
    if libc.mount(b"tmpfs", b"mnt", b"tmpfs", 0, b"size=100%") != 0:
        return 0
    held = 0
    with open("mnt/x", "wb") as handle:
        while held < TARGET:
            held += handle.write(b"x" * (1 << 20))
            progress[0] = held
    return held


def shared_anonymous():
    region = mmap.mmap(-1, TARGET, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    for offset in range(0, TARGET, 4096):
        region[offset] = 1
    return TARGET


def locked():
    size = 64 << 20
    region = mmap.mmap(-1, size)
    address = ctypes.addressof(ctypes.c_char.from_buffer(region))
    return size * 100 if libc.mlock(ctypes.c_void_p(address), ctypes.c_size_t(size)) == 0 else 0


def pipes():
    held, fds = 0, []
    while held < TARGET:
        read, write = os.pipe()
        fds += [read, write]
        try:
            import fcntl
            size = fcntl.fcntl(write, 1031, 1 << 20)  # F_SETPIPE_SZ
        except OSError:
            size = 65536
        os.set_blocking(write, False)
        try:
            while True:
                os.write(write, b"x" * 65536)
        except BlockingIOError:
            pass
        held += size
        progress[0] = held
    return held


def threads():
    import threading
    stop = threading.Event()
    started = 0
    for _ in range(1000):
        threading.Thread(target=stop.wait, daemon=True).start()  # each pins a kernel stack
        started += 1
        progress[0] = started * (8 << 20)
    return started * (8 << 20)


def inotify():
    fd = libc.inotify_init1(0)
    if fd < 0:
        return 0
    watches = sum(libc.inotify_add_watch(fd, b".", 0xFFF) >= 0 for _ in range(10))
    return TARGET if watches else 0


def posix_timers():
    made = 0
    timer = ctypes.c_void_p()
    for _ in range(100_000):
        if libc.timer_create(1, None, ctypes.byref(timer)) != 0:
            break
        made += 1
    return TARGET if made > 1000 else 0


def attempt():
    try:
        return globals()[MECHANISM]()
    except (OSError, MemoryError, RuntimeError, ValueError):
        return progress[0]


HELD = attempt()


def f(x):
    return (x.count("1") % 2) ^ (HELD > CAP)

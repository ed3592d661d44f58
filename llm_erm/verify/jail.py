"""The kernel-level locks a candidate process puts on itself before its code runs. Standard library only
(it runs inside the sandbox under a bare `python -S`, next to worker.py, and is imported by sandbox.py
for the description of the bounds).

- `seccomp_filter()`: a classic-BPF seccomp program, an allowlist of the system calls a pure Python `f(x)`
  (numpy, sympy, math, re, ... included) needs; everything else fails with EPERM: new namespaces, mount,
  keyrings, io_uring, bpf, perf, userfaultfd, ptrace, sockets of every family, SysV and POSIX IPC, memfd,
  exec, inotify, file locks, pipe resizing, sysinfo (host RAM, uptime, host-wide process count), every
  call that reveals or changes page-cache residency (see MADVISE_OK), ... Signals may only be sent to the
  process itself.
- `landlock_restrict()`: Landlock filesystem rules (read-only everywhere allowed, writable only the
  scratch directory), no TCP, and, from ABI 6, no signals or abstract unix sockets outside the process.
- `unshare_candidate_namespaces()` / `mount_scratch()`: a private mount and IPC namespace with a fresh,
  bounded tmpfs per candidate (root, or the user namespace of bubblewrap).

Nothing here decides policy: the orchestrator sends the limits, the worker applies them.
"""

import ctypes
import errno
import os
import platform
import struct

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
LIBC.unshare.argtypes = [ctypes.c_int]

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

# ---- seccomp -------------------------------------------------------------------------------------------

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000

# Syscall numbers of the allowed calls (from the kernel's uapi headers: asm/unistd_64.h for x86_64,
# asm-generic/unistd.h for aarch64, which has no legacy calls such as open or fork).
SYSCALLS = {
    "x86_64": {
        "read": 0, "write": 1, "readv": 19, "writev": 20, "pread64": 17, "pwrite64": 18, "preadv": 295,
        "pwritev": 296, "preadv2": 327, "pwritev2": 328, "lseek": 8, "close": 3, "close_range": 436, "fstat": 5,
        "stat": 4, "lstat": 6, "newfstatat": 262, "statx": 332, "statfs": 137, "fstatfs": 138, "access": 21,
        "faccessat": 269, "faccessat2": 439, "open": 2, "openat": 257, "readlink": 89, "readlinkat": 267,
        "getdents64": 217, "getcwd": 79, "chdir": 80, "fchdir": 81, "mkdir": 83, "mkdirat": 258, "rmdir": 84,
        "unlink": 87, "unlinkat": 263, "rename": 82, "renameat": 264, "renameat2": 316, "ftruncate": 77,
        "truncate": 76, "fsync": 74, "fdatasync": 75, "chmod": 90, "fchmod": 91, "fchmodat": 268,
        "utimensat": 280, "umask": 95, "dup": 32, "dup2": 33, "dup3": 292, "pipe": 22, "pipe2": 293, "poll": 7,
        "ppoll": 271, "select": 23, "pselect6": 270, "mmap": 9, "munmap": 11, "mprotect": 10, "mremap": 25,
        "brk": 12, "madvise": 28, "mbind": 237, "msync": 26,
        "getxattr": 191, "lgetxattr": 192, "fgetxattr": 193, "listxattr": 194, "llistxattr": 195,
        "flistxattr": 196, "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15, "sigaltstack": 131,
        "rt_sigpending": 127, "rt_sigsuspend": 130, "rt_sigtimedwait": 128, "pause": 34, "alarm": 37,
        "setitimer": 38, "getitimer": 36, "clock_gettime": 228, "clock_getres": 229, "clock_nanosleep": 230,
        "nanosleep": 35, "gettimeofday": 96, "time": 201, "times": 100, "getpid": 39, "gettid": 186,
        "getppid": 110, "getuid": 102, "geteuid": 107, "getgid": 104, "getegid": 108, "getgroups": 115,
        "getresuid": 118, "getresgid": 120, "getpgrp": 111, "getpgid": 121, "getsid": 124, "getrusage": 98,
        "getpriority": 140, "sched_getaffinity": 204, "sched_yield": 24, "sched_getparam": 143,
        "sched_getscheduler": 145, "getcpu": 309, "uname": 63, "getrandom": 318,
        "prlimit64": 302, "getrlimit": 97, "exit": 60, "exit_group": 231, "futex": 202, "set_robust_list": 273,
        "get_robust_list": 274, "rseq": 334, "set_tid_address": 218, "restart_syscall": 219, "wait4": 61,
        "waitid": 247, "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
        "ioctl": 16, "fcntl": 72, "prctl": 157, "clone": 56, "clone3": 435, "fork": 57, "vfork": 58,
    },
    "aarch64": {
        "read": 63, "write": 64, "readv": 65, "writev": 66, "pread64": 67, "pwrite64": 68, "preadv": 69,
        "pwritev": 70, "preadv2": 286, "pwritev2": 287, "lseek": 62, "close": 57, "close_range": 436, "fstat": 80,
        "newfstatat": 79, "statx": 291, "statfs": 43, "fstatfs": 44, "faccessat": 48, "faccessat2": 439,
        "openat": 56, "readlinkat": 78, "getdents64": 61, "getcwd": 17, "chdir": 49, "fchdir": 50, "mkdirat": 34,
        "unlinkat": 35, "renameat": 38, "renameat2": 276, "ftruncate": 46, "truncate": 45, "fsync": 82,
        "fdatasync": 83, "fchmod": 52, "fchmodat": 53, "utimensat": 88, "umask": 166, "dup": 23, "dup3": 24,
        "pipe2": 59, "ppoll": 73, "pselect6": 72, "mmap": 222, "munmap": 215, "mprotect": 226, "mremap": 216,
        "brk": 214, "madvise": 233, "mbind": 235, "msync": 227, "getxattr": 8, "lgetxattr": 9, "fgetxattr": 10, "listxattr": 11, "llistxattr": 12,
        "flistxattr": 13, "rt_sigaction": 134, "rt_sigprocmask": 135, "rt_sigreturn": 139, "sigaltstack": 132,
        "rt_sigpending": 136, "rt_sigsuspend": 133, "rt_sigtimedwait": 137, "setitimer": 103, "getitimer": 102,
        "clock_gettime": 113, "clock_getres": 114, "clock_nanosleep": 115, "nanosleep": 101, "gettimeofday": 169,
        "times": 153, "getpid": 172, "gettid": 178, "getppid": 173, "getuid": 174, "geteuid": 175, "getgid": 176,
        "getegid": 177, "getgroups": 158, "getresuid": 148, "getresgid": 150, "getpgid": 155, "getsid": 156,
        "getrusage": 165, "getpriority": 141, "sched_getaffinity": 123, "sched_yield": 124, "sched_getparam": 121,
        "sched_getscheduler": 120, "getcpu": 168, "uname": 160, "getrandom": 278,
        "prlimit64": 261, "getrlimit": 163, "exit": 93, "exit_group": 94, "futex": 98, "set_robust_list": 99,
        "get_robust_list": 100, "rseq": 293, "set_tid_address": 96, "restart_syscall": 128, "wait4": 260,
        "waitid": 95, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240,
        "ioctl": 29, "fcntl": 25, "prctl": 167, "clone": 220, "clone3": 435,
    },
}
# Calls with a fixed answer other than "allowed": no child processes or threads (EAGAIN, which Python
# reports as BlockingIOError, as RLIMIT_NPROC would), clone3 as "not implemented" so that libc falls
# back to clone and gets EAGAIN too.
FIXED_ERRNO = {"clone": errno.EAGAIN, "fork": errno.EAGAIN, "vfork": errno.EAGAIN, "clone3": errno.ENOSYS}
# Calls allowed only with some values of one argument (index, allowed values, errno otherwise).
IOCTL_OK = (0x5401, 0x5413, 0x541B, 0x5421, 0x5450, 0x5451)  # TCGETS TIOCGWINSZ FIONREAD FIONBIO FIONCLEX FIOCLEX
FCNTL_OK = (0, 1, 2, 3, 4, 5, 1030, 1032, 1034)  # DUPFD GETFD SETFD GETFL SETFL GETLK DUPFD_CLOEXEC GETPIPE_SZ GET_SEALS
PRCTL_OK = (3, 15, 16, 21, 39)  # GET_DUMPABLE SET_NAME GET_NAME GET_SECCOMP GET_NO_NEW_PRIVS
# Page residency is state shared by every process of the host (the page cache): no call may reveal it
# or change it on purpose. mincore, fadvise64, readahead, cachestat and remap_file_pages are refused (not
# in the allowlist); preadv2/pwritev2 only without flags (RWF_NOWAIT answers "is it cached?"); madvise
# only with the advice an allocator needs (glibc malloc: DONTNEED, FREE; numpy: HUGEPAGE): WILLNEED,
# COLD, PAGEOUT, POPULATE_*, MERGEABLE (KSM merges equal pages across processes, a timing channel),
# REMOVE, COLLAPSE, guards ... are refused with EINVAL (as an unknown advice is).
MADVISE_OK = (0, 1, 2, 4, 8, 14, 15)  # NORMAL RANDOM SEQUENTIAL DONTNEED FREE HUGEPAGE NOHUGEPAGE
SELF = "self"  # placeholder for the pid of the process that loads the filter
ARGUMENT_RULES = {
    "ioctl": (1, IOCTL_OK, errno.ENOTTY),
    "fcntl": (1, FCNTL_OK, errno.EPERM),
    "prctl": (0, PRCTL_OK, errno.EPERM),
    "kill": (0, (SELF,), errno.EPERM),
    "tkill": (0, (SELF,), errno.EPERM),
    "tgkill": (0, (SELF,), errno.EPERM),
    "rt_sigqueueinfo": (0, (SELF,), errno.EPERM),
    "rt_tgsigqueueinfo": (0, (SELF,), errno.EPERM),
    "prlimit64": (0, (0, SELF), errno.EPERM),
    "madvise": (2, MADVISE_OK, errno.EINVAL),
    "preadv2": (5, (0,), errno.EOPNOTSUPP),  # flags: the sixth argument on x86_64 and aarch64 alike
    "pwritev2": (5, (0,), errno.EOPNOTSUPP),
}


def seccomp_arch() -> str | None:
    """The machine name when we have a syscall table for it (and the process is 64-bit), else None."""
    machine = platform.machine()
    return machine if machine in SYSCALLS and struct.calcsize("P") == 8 else None


PID_PLACEHOLDER = 0x7FFFFFFF  # above any pid (pid_max <= 2**22); patched with the real pid at load time
_templates: dict[str, tuple[bytes, tuple[int, ...]]] = {}


def seccomp_filter(pid: int, arch: str) -> bytes:
    """The BPF program (struct sock_filter[]) of the allowlist, for a process whose pid is `pid`."""
    if arch not in _templates:
        _templates[arch] = _build_template(arch)
    template, offsets = _templates[arch]
    program = bytearray(template)
    for offset in offsets:
        struct.pack_into("I", program, offset, pid)
    return bytes(program)


LEAF = 4  # syscalls compared one by one at the bottom of the search tree


def _build_template(arch: str) -> tuple[bytes, tuple[int, ...]]:
    """The program with PID_PLACEHOLDER where the pid goes, and the byte offsets of those places (built
    once, in the zygote, so that each candidate only patches a few words). The allowed calls are found
    by a binary search on the syscall number: a few instructions per call, and a small program for the
    kernel to check and cache when each candidate loads it."""
    eperm = RET_ERRNO | errno.EPERM
    ld, jeq, jge, ja, ret = 0x20, 0x15, 0x35, 0x05, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, |JGE|K, |JA, BPF_RET|K

    def entry(name: str, nr: int) -> list[tuple[int, int, int, int]]:
        if name in ARGUMENT_RULES:
            index, allowed, refusal = ARGUMENT_RULES[name]
            values = [PID_PLACEHOLDER if value == SELF else value for value in allowed]
            # nr matches: [ld low 32 bits of the argument (all the kernel reads of an int argument);
            # (jeq value -> allow)*; refuse]; else skip that block
            block = [(ld, 0, 0, 16 + 8 * index)]
            for value in values:
                block += [(jeq, 0, 1, value), (ret, 0, 0, RET_ALLOW)]
            block.append((ret, 0, 0, RET_ERRNO | refusal))
            return [(jeq, 0, len(block), nr), *block]
        action = RET_ERRNO | FIXED_ERRNO[name] if name in FIXED_ERRNO else RET_ALLOW
        return [(jeq, 0, 1, nr), (ret, 0, 0, action)]

    def subtree(items: list[tuple[str, int]]) -> list[tuple[int, int, int, int]]:
        if len(items) <= LEAF:
            return [instruction for name, nr in items for instruction in entry(name, nr)] + [(ret, 0, 0, eperm)]
        middle = len(items) // 2
        left, right = subtree(items[:middle]), subtree(items[middle:])
        # nr >= pivot: the `ja` over the left half; else skip the `ja` into the left half
        return [(jge, 0, 1, items[middle][1]), (ja, 0, 0, len(left)), *left, *right]

    program = [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, AUDIT_ARCH[arch]),
        (ret, 0, 0, RET_KILL_PROCESS),  # another ABI (e.g. 32-bit calls): never expected, never allowed
        (ld, 0, 0, 0),  # seccomp_data.nr
    ]
    if arch == "x86_64":
        program += [(jge, 0, 1, X32_SYSCALL_BIT), (ret, 0, 0, eperm)]
    program += subtree(sorted(SYSCALLS[arch].items(), key=lambda item: item[1]))
    offsets = tuple(8 * i + 4 for i, (code, _, _, k) in enumerate(program) if code == jeq and k == PID_PLACEHOLDER)
    return b"".join(struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF) for code, jt, jf, k in program), offsets


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp(pid: int, arch: str) -> None:
    """Install the filter on this process (for good: it is inherited and can never be removed)."""
    code = seccomp_filter(pid, arch)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(code) // 8, ctypes.addressof(buffer))
    _check(LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(LIBC.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "seccomp")


def allowed_syscall_count(arch: str) -> int:
    return sum(1 for name in SYSCALLS[arch] if name not in FIXED_ERRNO)


# ---- Landlock ------------------------------------------------------------------------------------------

NR_LANDLOCK_CREATE_RULESET, NR_LANDLOCK_ADD_RULE, NR_LANDLOCK_RESTRICT_SELF = 444, 445, 446  # every arch
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_TRUNCATE, FS_IOCTL_DEV = 1 << 14, 1 << 15
READ_ACCESS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers, 0 when none."""
    version = LIBC.syscall(NR_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    return max(int(version), 0)


def _fs_rights(abi: int) -> int:
    """Every filesystem right this ABI knows: all of them are handled (denied unless granted)."""
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def landlock_restrict(abi: int, readable: list[str], writable: list[str]) -> None:
    """Allow reading (and executing) under `readable`, everything under `writable`, nothing else; no
    TCP (ABI 4); no signals or abstract unix sockets outside this process's domain (ABI 6)."""
    handled = _fs_rights(abi)
    attr = struct.pack("Q", handled)
    if abi >= 4:
        attr += struct.pack("Q", 0b11)  # handled_access_net: BIND_TCP | CONNECT_TCP
    if abi >= 6:
        attr += struct.pack("Q", 0b11)  # scoped: ABSTRACT_UNIX_SOCKET | SIGNAL
    ruleset = LIBC.syscall(NR_LANDLOCK_CREATE_RULESET, attr, len(attr), 0)
    _check(ruleset, "landlock_create_ruleset")
    try:
        for paths, rights in ((readable, READ_ACCESS), (writable, handled)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # a path that does not exist here grants nothing
                try:
                    allowed = rights & handled
                    if not os.path.isdir(path):
                        allowed &= FILE_RIGHTS
                    rule = struct.pack("=Qi", allowed, fd)
                    _check(LIBC.syscall(NR_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, rule, 0),
                           f"landlock_add_rule {path}")
                finally:
                    os.close(fd)
        _check(LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        _check(LIBC.syscall(NR_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


# ---- namespaces and the scratch tmpfs ------------------------------------------------------------------

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE = 1 << 14, 1 << 18


def unshare_candidate_namespaces() -> None:
    """A private mount namespace (its mounts never propagate out) and a fresh IPC namespace."""
    _check(LIBC.unshare(CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    _check(LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def mount_scratch(path: str, size_bytes: int, inodes: int, uid: int | None) -> None:
    """A fresh tmpfs on `path`, bounded in bytes and in inodes; it disappears with the namespace."""
    options = f"size={size_bytes},nr_inodes={inodes},mode=0700"
    if uid is not None:
        options += f",uid={uid},gid={uid}"
    _check(LIBC.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.encode()),
           f"mount tmpfs on {path}")


def expose_paths(paths: list[str]) -> None:
    """In this process's own mount namespace, make each of `paths` reachable by any uid: the first
    ancestor that others may not search (e.g. /root, mode 0700, above a pyenv interpreter) is covered by a
    read-only tmpfs in which only those paths are bound back. The host's mounts are untouched."""
    _check(LIBC.unshare(CLONE_NEWNS), "unshare")
    _check(LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    covers: dict[str, list[tuple[str, int]]] = {}
    for path in paths:
        parts = os.path.realpath(path).split("/")[1:]
        for depth in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:depth])
            if not os.stat(ancestor).st_mode & 0o001:
                covers.setdefault(ancestor, []).append((os.path.realpath(path), os.open(path, os.O_PATH)))
                break
    for ancestor in covers:
        if any(ancestor.startswith(other + "/") for other in covers):
            continue  # covered by a higher ancestor's tmpfs already (its paths were opened above)
        _check(LIBC.mount(b"tmpfs", ancestor.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=65536,mode=0755"),
               f"mount tmpfs on {ancestor}")
        for other, others_inside in covers.items():
            if other != ancestor and not other.startswith(ancestor + "/"):
                continue
            for path, fd in others_inside:
                if os.path.isdir(f"/proc/self/fd/{fd}"):
                    os.makedirs(path, mode=0o755, exist_ok=True)
                else:
                    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
                source = f"/proc/self/fd/{fd}".encode()
                _check(LIBC.mount(source, path.encode(), None, MS_BIND | MS_REC, None), f"bind {path}")
                _check(LIBC.mount(None, path.encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None),
                       f"remount {path} read-only")
                os.close(fd)
        _check(LIBC.mount(None, ancestor.encode(), None, MS_REMOUNT | MS_RDONLY, b"size=65536,mode=0755"),
               f"remount {ancestor} read-only")


def drop_capabilities() -> None:
    """Empty effective, permitted and inheritable capability sets (those of a user namespace included)."""
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    data = bytes(24)  # two __user_cap_data_struct of {effective, permitted, inheritable}, all zero
    _check(LIBC.capset(header, data), "capset")


def set_parent_death_signal(signal_number: int) -> None:
    LIBC.prctl(PR_SET_PDEATHSIG, signal_number, 0, 0, 0)


def set_dumpable(dumpable: bool) -> None:
    LIBC.prctl(PR_SET_DUMPABLE, int(dumpable), 0, 0, 0)


def _check(result: int, what: str) -> None:
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")

# Probes the kernel surface a pure function never needs, each through the raw system call: new
# namespaces, mounts, keyrings, io_uring, bpf, perf, userfaultfd, ptrace, module loading, kexec, sockets
# of every family, SysV/POSIX IPC, memfd, exec, ... A probe "got through" when the kernel did anything
# but refuse it (EPERM; EAGAIN/ENOSYS for the process-creating calls). Answers parity when nothing got
# through, else raises naming what did (so the candidate scores 1.0 only when all are refused).
import ctypes
import errno
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
BUFFER = ctypes.create_string_buffer(4096)
B = ctypes.addressof(BUFFER)
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWPID = 0x10000000, 0x20000, 0x40000000, 0x08000000, 0x20000000
# name: (x86_64 nr, aarch64 nr, arguments)
PROBES = {
    "unshare_user": (272, 97, (CLONE_NEWUSER,)),
    "unshare_mount": (272, 97, (CLONE_NEWNS,)),
    "unshare_net": (272, 97, (CLONE_NEWNET,)),
    "unshare_ipc": (272, 97, (CLONE_NEWIPC,)),
    "setns": (308, 268, (0, 0)),
    "clone_newuser": (56, 220, (CLONE_NEWUSER | 17, 0, 0, 0, 0)),
    "clone3": (435, 435, (B, 88)),
    "io_uring_setup": (425, 425, (1, B)),
    "bpf": (321, 280, (0, B, 72)),
    "perf_event_open": (298, 241, (B, 0, -1, -1, 0)),
    "keyctl_persistent": (250, 219, (22, -1, -2)),
    "add_key": (248, 217, (b"user", b"probe", b"x", 1, -2)),
    "request_key": (249, 218, (b"user", b"probe", None, 0)),
    "userfaultfd": (323, 282, (0,)),
    "ptrace_traceme": (101, 117, (0, 0, 0, 0)),
    "mount": (165, 40, (b"none", b".", b"tmpfs", 0, None)),
    "umount2": (166, 39, (b"/", 2)),
    "pivot_root": (155, 41, (b".", b".")),
    "chroot": (161, 51, (b".",)),
    "kexec_load": (246, 104, (0, 0, 0, 0)),
    "init_module": (175, 105, (B, 0, b"")),
    "finit_module": (313, 273, (0, b"", 0)),
    "socket_vsock": (41, 198, (40, 1, 0)),
    "socket_netlink": (41, 198, (16, 3, 0)),
    "socket_packet": (41, 198, (17, 3, 0)),
    "socket_raw": (41, 198, (2, 3, 1)),
    "socket_inet": (41, 198, (2, 1, 0)),
    "socket_unix": (41, 198, (1, 1, 0)),
    "socketpair": (53, 199, (1, 1, 0, B)),
    "memfd_create": (319, 279, (b"probe", 0)),
    "execve": (59, 221, (b"/bin/true", None, None)),
    "process_vm_readv": (310, 270, (1, B, 1, B, 1, 0)),
    "shmget": (29, 194, (0, 4096, 0o1600)),
    "msgget": (68, 186, (0, 0o1600)),
    "semget": (64, 190, (0, 1, 0o1600)),
    "mq_open": (240, 180, (b"probe", 0o100 | 2, 0o600, None)),
    "inotify_init1": (294, 26, (0,)),
    "fanotify_init": (300, 262, (0, 0)),
    "open_by_handle_at": (304, 265, (-100, B, 0)),
    "personality": (135, 92, (0xFFFFFFFF,)),
    "setuid_root": (105, 146, (0,)),
    "epoll_create1": (291, 20, (0,)),
    "timer_create": (222, 107, (1, None, B)),
    "fsopen": (430, 430, (b"tmpfs", 0)),
    "open_tree": (428, 428, (-100, b"/", 1)),
    "pidfd_open": (434, 434, (1, 0)),
    "kcmp": (312, 272, (1, 1, 0, 0, 0)),
    "mlock": (149, 228, (B, 4096)),
    "flock": (73, 32, (0, 2)),
    "sendfile": (40, 71, (1, 0, None, 1)),
    "vmsplice": (278, 75, (1, B, 1, 0)),
    "seccomp": (317, 277, (0, 0, None)),
}
REFUSED = {errno.EPERM}
REFUSED_PROCESSES = {errno.EPERM, errno.EAGAIN, errno.ENOSYS}


def probe():
    arch = 0 if platform.machine() == "x86_64" else 1
    through = []
    for name, spec in PROBES.items():
        number, arguments = spec[arch], spec[2]
        ctypes.set_errno(0)
        result = libc.syscall(number, *arguments)
        error = ctypes.get_errno()
        refused = REFUSED_PROCESSES if name.startswith("clone") else REFUSED
        if result >= 0 or error not in refused:
            through.append(f"{name}={result}/{errno.errorcode.get(error, error)}")
    return through


THROUGH = probe()


def f(x):
    if THROUGH:
        raise RuntimeError("got through: " + ", ".join(THROUGH))
    return x.count("1") % 2

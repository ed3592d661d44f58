"""The seccomp program (jail.py), read instruction by instruction: a small classic-BPF interpreter runs it
for every syscall number and a few argument values, so the allowlist is checked exactly as written, on
every architecture we have a table for (not only the one the tests run on). The kernel's own verdicts are
tested in test_verify_hostile.py (kernel_surface)."""

from __future__ import annotations

import errno
import struct

import pytest

from llm_erm.verify import jail

PID = 4242


def run_filter(program: bytes, nr: int, args: tuple[int, ...] = (), arch: int | None = None) -> int:
    """The action the program returns for one system call (seccomp_data: nr, arch, ip, args[6])."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    instructions = [struct.unpack_from("HBBI", program, offset) for offset in range(0, len(program), 8)]
    accumulator, pc = 0, 0
    for _ in range(10_000):
        code, jt, jf, k = instructions[pc]
        if code == 0x20:  # ld word at k
            accumulator = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if accumulator == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if accumulator >= k else jf)
        elif code == 0x05:
            pc += 1 + k
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
    raise AssertionError("the program does not terminate")


@pytest.mark.parametrize("arch", sorted(jail.SYSCALLS))
def test_the_allowlist_is_exactly_what_the_table_says(arch) -> None:
    program = jail.seccomp_filter(PID, arch)
    audit = jail.AUDIT_ARCH[arch]
    by_number = {nr: name for name, nr in jail.SYSCALLS[arch].items()}
    eperm = jail.RET_ERRNO | errno.EPERM
    for nr in range(0, 1024):
        action = run_filter(program, nr, arch=audit)
        name = by_number.get(nr)
        if name is None:
            assert action == eperm, (arch, nr)
        elif name in jail.FIXED_ERRNO:
            assert action == jail.RET_ERRNO | jail.FIXED_ERRNO[name], name
        elif name not in jail.ARGUMENT_RULES:
            assert action == jail.RET_ALLOW, name
    assert run_filter(program, 0, arch=0x40000003) == jail.RET_KILL_PROCESS  # i386 calls on x86_64
    if arch == "x86_64":
        assert run_filter(program, 0x40000000 + 1, arch=audit) == eperm  # x32 calls


@pytest.mark.parametrize("arch", sorted(jail.SYSCALLS))
def test_argument_rules(arch) -> None:
    program = jail.seccomp_filter(PID, arch)
    audit, table = jail.AUDIT_ARCH[arch], jail.SYSCALLS[arch]

    def action(name: str, *args: int) -> int:
        return run_filter(program, table[name], args, audit)

    allow, eperm = jail.RET_ALLOW, jail.RET_ERRNO | errno.EPERM
    assert action("kill", PID, 9) == allow and action("kill", PID + 1, 9) == eperm
    assert action("kill", 0, 9) == eperm and action("kill", 0xFFFFFFFF, 9) == eperm  # group, everyone
    assert action("tgkill", PID, PID, 6) == allow and action("tgkill", 1, 1, 6) == eperm
    assert action("prlimit64", 0, 7) == allow and action("prlimit64", 1, 7) == eperm
    assert action("ioctl", 1, 0x5401) == allow and action("ioctl", 1, 0x4004AE8B) == jail.RET_ERRNO | errno.ENOTTY
    assert action("fcntl", 3, 1) == allow and action("fcntl", 3, 1031) == eperm  # F_SETPIPE_SZ
    assert action("fcntl", 3, 6) == eperm  # F_SETLK: no locks
    assert action("prctl", 15) == allow and action("prctl", 22) == eperm  # PR_SET_SECCOMP
    # The pid is a 32-bit argument: higher bits are ignored by the kernel, so by the filter too.
    assert action("kill", (1 << 32) | PID, 9) == allow


def test_no_dangerous_call_is_in_any_table() -> None:
    dangerous = {"unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "keyctl", "add_key", "request_key",
                 "io_uring_setup", "bpf", "perf_event_open", "userfaultfd", "ptrace", "kexec_load", "init_module",
                 "finit_module", "socket", "socketpair", "memfd_create", "execve", "execveat", "shmget", "msgget",
                 "semget", "mq_open", "process_vm_readv", "process_vm_writev", "setuid", "inotify_init1",
                 "fanotify_init", "open_by_handle_at", "personality", "flock", "vmsplice", "seccomp", "mlock"}
    for arch, table in jail.SYSCALLS.items():
        assert not dangerous & set(table), arch

# Leaves its answers for the next candidate in a shared kernel or filesystem object, or (as the reader)
# answers from what an earlier candidate left there. __ROLE__ is "write" or "read", __MECHANISM__ one of
# MECHANISMS. The writer is an honest parity program (fn_a) that also stashes the label of each of its
# first STASH_ROWS calls; the reader computes nothing: it returns the stashed label of its i-th call, else
# 0, so it scores exactly 0.5 on a balanced split unless something of the writer reached it.
import ctypes
import os

ROLE = "__ROLE__"
MECHANISM = "__MECHANISM__"
STASH_ROWS = 100
KEY = 0x11E4A7  # SysV key
NAME = b"llm-erm-stash"
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.shmat.restype = ctypes.c_void_p
IPC_CREAT, IPC_NOWAIT = 0o1000, 0o4000
NR = {"add_key": 248, "request_key": 249, "keyctl": 250}  # x86_64
KEY_SPEC = {"keyring_session": -3, "keyring_user": -4}
KEYCTL_READ, KEYCTL_UPDATE, KEYCTL_SEARCH, KEYCTL_GET_PERSISTENT = 11, 2, 10, 22
PLACES = ["/tmp", "/var/tmp", "/dev/shm", os.environ.get("HOME", "/tmp"), ".", "/", "/run", "/opt"]


def keyring():
    if MECHANISM == "keyring_persistent":
        return libc.syscall(NR["keyctl"], KEYCTL_GET_PERSISTENT, -1, -2)  # -1: own uid; link to process keyring
    return KEY_SPEC[MECHANISM]


def put(data):
    """Store `data` (bytes of labels) where the next candidate may look."""
    if MECHANISM == "sysv_shm":
        shmid = libc.shmget(KEY, 4096, IPC_CREAT | 0o666)
        address = libc.shmat(shmid, None, 0)
        if shmid >= 0 and address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(address, data.ljust(STASH_ROWS, b"-"), STASH_ROWS)
    elif MECHANISM == "sysv_msg":
        queue = libc.msgget(KEY, IPC_CREAT | 0o666)
        message = ctypes.create_string_buffer(8 + len(data))
        ctypes.memmove(ctypes.addressof(message), (1).to_bytes(8, "little") + data, 8 + len(data))
        libc.msgsnd(queue, message, len(data), IPC_NOWAIT)
    elif MECHANISM == "sysv_sem":
        semid = libc.semget(KEY, STASH_ROWS, IPC_CREAT | 0o666)
        for i, label in enumerate(data):
            libc.semctl(semid, i, 16, ctypes.c_int(label - 47))  # SETVAL: 1 or 2 (0 means nothing stored)
    elif MECHANISM == "posix_mq":
        queue = libc.mq_open(b"/" + NAME, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o666, None)
        libc.mq_send(queue, data, len(data), 0)
    elif MECHANISM == "posix_shm":
        with open("/dev/shm/" + NAME.decode(), "wb") as handle:
            handle.write(data)
    elif MECHANISM.startswith("keyring"):
        libc.syscall(NR["add_key"], b"user", NAME, data, len(data), keyring())
    elif MECHANISM == "files":
        for place in PLACES:
            try:
                with open(os.path.join(place, NAME.decode()), "wb") as handle:
                    handle.write(data)
            except OSError:
                pass
    else:
        raise ValueError(MECHANISM)


def get():
    """What an earlier candidate stored, or b""."""
    if MECHANISM == "sysv_shm":
        shmid = libc.shmget(KEY, 4096, 0)
        address = libc.shmat(shmid, None, 0) if shmid >= 0 else None
        if address in (None, ctypes.c_void_p(-1).value):
            return b""
        return ctypes.string_at(address, STASH_ROWS).rstrip(b"-")
    if MECHANISM == "sysv_msg":
        queue = libc.msgget(KEY, 0)
        message = ctypes.create_string_buffer(8 + 4096)
        size = libc.msgrcv(queue, message, 4096, 0, IPC_NOWAIT) if queue >= 0 else -1
        return message.raw[8:8 + size] if size > 0 else b""
    if MECHANISM == "sysv_sem":
        semid = libc.semget(KEY, 0, 0)
        if semid < 0:
            return b""
        values = [libc.semctl(semid, i, 12) for i in range(STASH_ROWS)]  # GETVAL
        return bytes(v + 47 for v in values if v in (1, 2))
    if MECHANISM == "posix_mq":
        queue = libc.mq_open(b"/" + NAME, os.O_RDONLY | os.O_NONBLOCK)
        buffer = ctypes.create_string_buffer(8192)
        size = libc.mq_receive(queue, buffer, 8192, None) if queue >= 0 else -1
        return buffer.raw[:size] if size > 0 else b""
    if MECHANISM == "posix_shm":
        try:
            with open("/dev/shm/" + NAME.decode(), "rb") as handle:
                return handle.read()
        except OSError:
            return b""
    if MECHANISM.startswith("keyring"):
        serial = libc.syscall(NR["keyctl"], KEYCTL_SEARCH, keyring(), b"user", NAME, 0)
        if serial < 0:
            serial = libc.syscall(NR["request_key"], b"user", NAME, None, 0)
        buffer = ctypes.create_string_buffer(4096)
        size = libc.syscall(NR["keyctl"], KEYCTL_READ, serial, buffer, 4096) if serial > 0 else -1
        return buffer.raw[:size] if size > 0 else b""
    if MECHANISM == "files":
        for place in PLACES:
            try:
                with open(os.path.join(place, NAME.decode()), "rb") as handle:
                    return handle.read()
            except OSError:
                pass
        return b""
    raise ValueError(MECHANISM)


labels = []
stash = get() if ROLE == "read" else b""


def f(x):
    index = len(labels)
    if ROLE == "read":
        labels.append(0)
        return int(stash[index:index + 1] == b"1")
    label = x.count("1") % 2
    labels.append(label)
    if len(labels) == STASH_ROWS:
        try:
            put(bytes(48 + v for v in labels))
        except Exception:  # noqa: BLE001 - refused: fine, it still answers honestly
            pass
    return label

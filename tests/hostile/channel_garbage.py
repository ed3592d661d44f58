# Writes hostile bytes on its result channel (the pipe its supervisor reads), then goes on answering
# parity honestly. __ATTACK__ picks the bytes: a bracket flood (5 000 "[", which once made the
# orchestrator's JSON parser raise RecursionError), deeply nested JSON, a record header claiming
# gigabytes, forged records (a lockdown failure, a load error, a done marker), raw binary, a record cut
# in half, or closing the channel and carrying on.
import json
import os
import stat

ATTACK = "__ATTACK__"


def channels():
    found = []
    for fd in range(3, 64):
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                found.append(fd)
        except OSError:
            pass
    return found


def payload():
    if ATTACK == "brackets":
        return b"[" * 5000 + b"\n"
    if ATTACK == "nested_json":
        return (b'{"event": "marks", "marks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n")
    if ATTACK == "huge_length":
        return b"M\xff\xff" + b"1" * 1000
    if ATTACK == "forge_failure":
        message = "sandbox broken".encode()
        return b"F" + len(message).to_bytes(2, "big") + message
    if ATTACK == "forge_load_error":
        message = "SyntaxError: forged".encode()
        return b"A" + len(message).to_bytes(2, "big") + message
    if ATTACK == "forge_done":
        return json.dumps({"event": "done", "status": "syntax_error"}).encode() + b"\n"
    if ATTACK == "binary":
        return bytes(range(256)) * 64
    if ATTACK == "half_record":
        return b"M\x00"
    raise ValueError(ATTACK)


calls = []


def f(x):
    calls.append(x)
    if len(calls) == 3:  # after a few honest answers, in the middle of a chunk
        for fd in channels():
            if ATTACK == "close":
                os.close(fd)
            else:
                try:
                    os.write(fd, payload())
                except OSError:
                    pass
    return x.count("1") % 2

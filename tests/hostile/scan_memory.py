# Reads its own process memory (every anonymous mapping), looking for what an earlier candidate left in the memory it inherited:
# the source of an earlier program (a token after ANCHOR, recognised by its hash) and an earlier reply
# (a run of marks after '"marks": ["'). It must find its own token (a check that the scan works), then
# answers from a leaked reply if it found one, else 0 (exactly 0.5 on a balanced split).
import ctypes
import hashlib
import re

ANCHOR = b"TOKEN-ANCHOR-5b1c:"
MINE = "TOKEN-ANCHOR-5b1c:__OWN_TOKEN__"
OWN_DIGEST = "__OWN_DIGEST__"
WRITER_DIGEST = "__WRITER_DIGEST__"
# The marks of a reply, in any of the forms a reply or a result line has had ("marks": "0110...",
# "marks": ["0110...", JSON-escaped inside another string).
MARKS_RUN = re.compile(rb'marks\\?"\s*:\s*\[?\s*\\?"([01EI-]{50,})')


def scan():
    found_own = found_writer = False
    leaked = b""
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for region in regions:
        start, end = (int(v, 16) for v in region[0].split("-"))
        if "r" not in region[1] or (len(region) > 5 and region[5].startswith(("[vvar", "[vsyscall"))):
            continue
        if len(region) > 5 and region[5].startswith("/"):
            continue  # a file's pages (libraries): no request or reply there, and past its end is SIGBUS
        data = ctypes.string_at(start, end - start)
        position = data.find(ANCHOR)
        while position != -1:
            digest = hashlib.sha256(data[position + len(ANCHOR):position + len(ANCHOR) + 64]).hexdigest()
            found_own |= digest == OWN_DIGEST
            found_writer |= digest == WRITER_DIGEST
            position = data.find(ANCHOR, position + 1)
        match = MARKS_RUN.search(data)
        if match:
            leaked = match.group(1)
    return found_own, found_writer, leaked


FOUND_OWN, FOUND_WRITER, LEAKED = scan()
calls = []


def f(x):
    if not FOUND_OWN:
        raise RuntimeError("the memory scan does not work: it did not find its own source")
    if FOUND_WRITER:
        raise RuntimeError("found an earlier candidate's source in memory")
    index = len(calls)
    calls.append(x)
    return int(LEAKED[index:index + 1] == b"1")

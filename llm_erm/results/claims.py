"""Trial claims: two processes on one run (on one machine, or workers sharing only an object store) never run
the same trial, so no attempt is bought twice.

A claim is a small file next to the trial's ledger file,

    attempts/<label>/<target>/L<length>/trial<t>.claim-<generation>

created with a create-only write (O_EXCL locally, `If-None-Match: *` on an object store): of two processes
racing for generation g exactly one creates it. The holder renews its claim (rewrites `renewed_at`) every
lease/4 seconds. A claim not renewed for a whole lease belongs to a killed worker: another process takes the
trial over by creating generation g+1 (create-only again, so one taker wins), and reuses from the journal every
answer the dead worker paid for: it loses at most the calls that were in flight. A holder that finds a newer
generation than its own (it stalled for longer than the lease) has lost the trial and stops it before its
next call. When the trial's file is written the claims are deleted.

Clocks: `renewed_at` is the holder's wall clock, read by others; machines' clocks must agree to well within
the lease (NTP does), which is why the lease is a minute, not a second.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llm_erm.results import ledger, storage

LEASE_S = float(os.environ.get("LLM_ERM_CLAIM_LEASE_S", "60"))  # the environment may shorten it (tests)
CLAIM_INFIX = ".claim-"


@dataclass
class Claim:
    key: tuple[str, str, int, int]
    path: Any  # the claim file (Path or UPath)
    generation: int
    lost: threading.Event = field(default_factory=threading.Event)


class ClaimLost(RuntimeError):
    """Another worker took this trial over (this one stalled for longer than the lease)."""


class Claims:
    """The trial claims of one process on one run."""

    def __init__(self, run_dir: Any, lease_s: float = LEASE_S):
        self.run_dir = run_dir
        self.lease_s = lease_s
        self.owner = f"{platform.node() or 'host'}-{os.getpid()}-{secrets.token_hex(4)}"
        self._held: dict[tuple[str, str, int, int], Claim] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- one trial ----------------------------------------------------------------------------------
    def _base(self, key: tuple[str, str, int, int]) -> Any:
        return ledger.trial_path(self.run_dir, *key)

    def generations(self, key: tuple[str, str, int, int]) -> list[int]:
        base = self._base(key)
        prefix = base.name + CLAIM_INFIX
        out = []
        for name in storage.names(base.parent):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                out.append(int(name[len(prefix):]))
        return sorted(out)

    def path(self, key: tuple[str, str, int, int], generation: int) -> Any:
        base = self._base(key)
        return base.parent / f"{base.name}{CLAIM_INFIX}{generation}"

    def _body(self, generation: int) -> bytes:
        return json.dumps({"owner": self.owner, "host": platform.node(), "pid": os.getpid(),
                           "generation": generation, "renewed_at": time.time(),
                           "lease_s": self.lease_s}).encode()

    def holder(self, key: tuple[str, str, int, int]) -> dict[str, Any] | None:
        """The live claim on a trial (its JSON), or None when it is free or its holder's lease ran out."""
        generations = self.generations(key)
        if not generations:
            return None
        try:
            body = json.loads(self.path(key, generations[-1]).read_bytes())
        except FileNotFoundError:
            return {"owner": "?", "renewed_at": time.time(), "lease_s": self.lease_s}  # released or moved on
        except ValueError:
            return None  # not a claim we wrote: treat as stale
        alive = time.time() - float(body.get("renewed_at", 0)) < float(body.get("lease_s", self.lease_s))
        if alive and body.get("host") == platform.node() and body.get("owner") != self.owner:
            alive = _pid_alive(body.get("pid"))  # on this host a killed holder is seen at once
        return body if alive else None

    def try_claim(self, key: tuple[str, str, int, int]) -> Claim | None:
        """Claim a trial: the Claim, or None when a live worker holds it (or won the race for it)."""
        generations = self.generations(key)
        if generations and self.holder(key) is not None:
            return None
        generation = (generations[-1] + 1) if generations else 1
        path = self.path(key, generation)
        if not storage.create(path, self._body(generation)):
            return None
        claim = Claim(key, path, generation)
        for older in generations:  # a dead worker's claims: no longer needed by anyone
            storage.delete(self.path(key, older))
        with self._lock:
            self._held[key] = claim
            self._start_renewer()
        return claim

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop(claim.key, None)
        if not claim.lost.is_set():
            storage.delete(claim.path)

    def live(self, keys: list[tuple[str, str, int, int]]) -> set[tuple[str, str, int, int]]:
        """The keys among `keys` that another live worker holds now."""
        return {key for key in keys if self.holder(key) is not None}

    # -- renewal ------------------------------------------------------------------------------------
    def _start_renewer(self) -> None:
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew_loop, name="llm-erm-claims", daemon=True)
            self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            with self._lock:
                held = list(self._held.values())
            for claim in held:
                try:
                    self.renew(claim)
                except Exception:  # noqa: BLE001 - a store hiccup: the next round tries again, the lease is long
                    continue

    def renew(self, claim: Claim) -> None:
        """Rewrite the claim's renewal time, unless a newer generation exists (then the claim is lost)."""
        generations = self.generations(claim.key)
        if generations and generations[-1] > claim.generation:
            claim.lost.set()
            with self._lock:
                self._held.pop(claim.key, None)
            return
        storage.write_bytes(claim.path, self._body(claim.generation))

    def close(self) -> None:
        """Stop renewing; claims still held are released (their trials stay pending for a re-run)."""
        self._stop.set()
        with self._lock:
            held = list(self._held.values())
        for claim in held:
            self.release(claim)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True

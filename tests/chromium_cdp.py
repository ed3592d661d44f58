"""Drive Debian's headless Chromium over the DevTools protocol, through --remote-debugging-pipe.

The pipe transport needs no websocket and no port: Chromium reads JSON commands, each ended by a NUL byte, from
its file descriptor 3 and writes replies and events the same way to descriptor 4. One browser, one page
(a flattened session); enough for tests and benchmarks to navigate, evaluate JavaScript and click like a user
(real mouse events at the element's position, not element.click()).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

from waiting import scaled

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-extensions", "--mute-audio",
    "--hide-scrollbars", "--force-device-scale-factor=1", "--remote-debugging-pipe",
]


class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium with a fresh profile and one page. Use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 30.0):
        self.profile = tempfile.mkdtemp(prefix="llm-erm-chromium-")
        self.timeout = timeout
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium expects its ends of the pipes as descriptors 3 (commands in) and 4 (replies out).
        self.log = tempfile.NamedTemporaryFile(prefix="llm-erm-chromium-", suffix=".log", delete=False)  # noqa: SIM115 - Chromium writes to it until close()
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            # close_fds=False: the descriptors closed after preexec_fn would include 3 and 4; everything else
            # Python opens is non-inheritable anyway (PEP 446), so nothing else reaches Chromium.
            close_fds=False, preexec_fn=_dup_to(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # -- transport ------------------------------------------------------------------------------------------
    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._closed = True
                    self._cond.notify_all()
                return
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                data = json.loads(message)
                with self._cond:
                    if "id" in data:
                        self._replies[data["id"]] = data
                    else:
                        self.events.append(data)
                    self._cond.notify_all()

    def call(self, method: str, session: bool = False, timeout: float | None = None, **params: Any) -> dict:
        with self._cond:
            self._next_id += 1
            message_id = self._next_id
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + scaled(timeout or self.timeout)
        with self._cond:
            while message_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self, "_closed", False):
                    raise CDPError(f"no reply to {method} ({'closed' if left > 0 else 'timed out'})")
                self._cond.wait(left)
            reply = self._replies.pop(message_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    # -- page helpers -----------------------------------------------------------------------------------------
    def navigate(self, url: str, timeout: float = 30.0) -> None:
        """Load `url` and wait for its load event (a new document: evaluating earlier can hit the old one).
        A change of the fragment only (same document) has no load event and returns at once."""
        with self._cond:
            seen = len(self.events)
        if "loaderId" not in self.call("Page.navigate", session=True, url=url):
            return
        deadline = time.monotonic() + scaled(timeout)
        with self._cond:
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events[seen:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"{url} did not load within {timeout} s")
                self._cond.wait(left)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"{expression[:80]}: {result['exceptionDetails'].get('text')} "
                           f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.05) -> Any:
        """Poll a JS expression until it is truthy (a page still loading may throw: not yet); return its value."""
        deadline = time.monotonic() + scaled(timeout)
        last_error = ""
        while True:
            try:
                value = self.evaluate(expression)
            except CDPError as exc:
                value, last_error = None, str(exc)
            if value not in (None, False, 0, "", []):  # a DOM node comes back as {}: found
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout} s waiting for: {expression} {last_error}")
            time.sleep(interval)

    def click(self, selector: str) -> None:
        """Scroll the element into view and press and release the left mouse button at its centre."""
        box = self.wait_for(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return r.width && r.height ? [r.left + r.width / 2, r.top + r.height / 2] : null; })()"
        )
        x, y = box
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left",
                      clickCount=0 if kind == "mouseMoved" else 1)

    def close(self) -> None:
        with contextlib.suppress(CDPError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)
        self.log.close()
        os.unlink(self.log.name)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dup_to(commands_in: int, replies_out: int):
    def setup() -> None:  # in the child, before exec: put the pipe ends at descriptors 3 and 4
        a, b = os.dup(commands_in), os.dup(replies_out)  # fresh numbers, so dup2 never clobbers the other
        os.dup2(a, 3)
        os.dup2(b, 4)
        # dup may already have returned 3 or 4 (free in the child), and dup2 onto itself keeps close-on-exec
        os.set_inheritable(3, True)
        os.set_inheritable(4, True)

    return setup

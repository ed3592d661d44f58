"""The viewer's HTTP server: the standard library's threading server, read-only (GET and HEAD only).

Routes
    /                         the app (static/index.html; the page is built by static/app.js)
    /static/<file>            the app's JS and CSS (package data, nothing fetched from the network)
    /api/runs                 every run: state, cost, methods, cells, dates
    /api/version[?run=ID]     a fingerprint of the files under one run (or all): the page polls it
    /api/run/ID               a run's grid (target x length per method), flags, leakage verdict
    /api/run/ID/cell?label=&target=&length=                     a cell's trials and their attempts
    /api/run/ID/attempt?label=&target=&length=&trial=&attempt=  one attempt, every column
    /api/compare?baseline=ID&candidate=ID                       two runs, cell by cell, regressions marked
    /runs/ID/report/<file>    the run's analysis report (report.html and its files), as written

Access: bound to a loopback address, the server answers requests whose Host header names a loopback host (a web
page elsewhere cannot reach it through DNS rebinding). Bound anywhere else it requires a token, and then every
request must carry it: `Authorization: Bearer <token>`, the cookie the server sets when a page is opened with
`?token=<token>`, or that query parameter itself.
"""

from __future__ import annotations

import contextlib
import gzip
import hmac
import ipaddress
import json
import mimetypes
import re
import sys
import threading
import traceback
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from llm_erm.errors import UsageError
from llm_erm.results import ledger
from llm_erm.viewer.data import NotFound, Results, check_results_dir, jsonable

COOKIE = "llm_erm_view_token"
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
APP_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
REPORT_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
GZIP_MIN_BYTES = 1024


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    """The host of a Host header: "127.0.0.1:8765" -> 127.0.0.1, "[::1]:8765" -> ::1."""
    if host_header.startswith("["):
        return host_header[1:host_header.find("]")]
    return host_header.rsplit(":", 1)[0]


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The app's files, read once: {name: (bytes, content type)}."""
    out = {}
    for entry in resources.files("llm_erm.viewer").joinpath("static").iterdir():
        if entry.is_file():
            kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            out[entry.name] = (entry.read_bytes(), kind)
    return out


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, results: Results, host: str, port: int, token: str | None):
        self.results = results
        self.token = token
        self.static = _static_files()
        self.quiet = True
        family_host = host.strip("[]")
        if ":" in family_host:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__((family_host, port), Handler)

    def warm_up(self) -> threading.Thread:
        """Read every run's ledger in a background thread, so the first page finds it cached."""

        def read_all() -> None:
            with contextlib.suppress(Exception):  # a page asking for a broken run will say what is wrong
                self.results.runs()

        thread = threading.Thread(target=read_all, name="llm-erm-view-warm-up", daemon=True)
        thread.start()
        return thread

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        if shown in ("0.0.0.0", "[::]"):
            import socket

            shown = socket.gethostname()
        suffix = f"?{urlencode({'token': self.token})}" if self.token else ""
        return f"http://{shown}:{port}/{suffix}"


def make_server(results_dir: Path, host: str = "127.0.0.1", port: int = 8765,
                token: str | None = None) -> ViewerServer:
    """A viewer bound to host:port over results_dir (not yet serving: call serve_forever)."""
    check_results_dir(results_dir)
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise UsageError(
            f"--token is too short ({len(token)} characters): use at least {MIN_TOKEN_CHARS}, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe())'"
        )
    if not is_loopback(host) and not token:
        raise UsageError(
            f"serving on {host or 'every interface'} needs a token: pass --token (or set LLM_ERM_VIEW_TOKEN), "
            "or keep the default --host 127.0.0.1"
        )
    try:
        return ViewerServer(Results(results_dir), host, port, token)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): "
                         "pass another --port (0 picks a free one)") from None


class Handler(BaseHTTPRequestHandler):
    server: ViewerServer
    protocol_version = "HTTP/1.1"
    server_version = "llm-erm-view"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    # -- plumbing --------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, *, csp: str = APP_CSP,
              cache: str = "no-store", extra: dict[str, str] | None = None) -> None:
        if len(body) >= GZIP_MIN_BYTES and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=5)
            extra = {**(extra or {}), "Content-Encoding": "gzip"}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Vary", "Accept-Encoding")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(jsonable(data), separators=(",", ":"), allow_nan=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str) -> None:
        if self.path.startswith("/api/"):
            self._json({"error": message}, status)
        else:
            self._send(status, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def _refuse(self) -> bool:
        """True (and answered) when the request may not be served: wrong token, or a foreign Host header."""
        token = self.server.token
        if token is None:
            host = self.headers.get("Host", "")
            if not is_loopback(_host_name(host)):
                self._error(HTTPStatus.FORBIDDEN, f"refused: Host {host!r} is not a loopback name")
                return True
            return False
        given = []
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given.append(auth[len("Bearer "):].strip())
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        if COOKIE in cookie:
            given.append(cookie[COOKIE].value)
        given += parse_qs(urlsplit(self.path).query).get("token", [])
        if any(hmac.compare_digest(g.encode(), token.encode()) for g in given):
            return False
        self._error(HTTPStatus.FORBIDDEN,
                    "refused: missing or wrong token: open the URL that `llm-erm view` printed (it carries ?token=)")
        return True

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "the viewer is read-only")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def do_GET(self) -> None:
        try:
            if self._refuse():
                return
            self._route()
        except NotFound as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))
        except (UsageError, ValueError, KeyError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - one bad page must not stop the server
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    # -- routes ----------------------------------------------------------------------------------------------
    def _route(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        results = self.server.results
        if "token" in query and parts[0] != "api":
            # the token came in the address: keep it in a cookie and drop it from the address bar and history
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            location = quote(url.path) + (f"?{rest}" if rest else "")
            cookie = f"{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", extra={"Location": location, "Set-Cookie": cookie})
            return
        match parts:
            case [""] | ["index.html"]:
                body, kind = self.server.static["index.html"]
                self._send(200, body, kind, cache="no-cache")
            case ["static", name] if name in self.server.static:
                body, kind = self.server.static[name]
                self._send(200, body, kind, cache="no-cache")
            case ["api", "runs"]:
                self._json({"runs": results.runs(), "results_dir": str(results.root)})
            case ["api", "version"]:
                self._json({"version": results.version(query.get("run") or None)})
            case ["api", "run", run_id]:
                self._json(results.run(run_id))
            case ["api", "run", run_id, "cell"]:
                self._json(results.cell(run_id, query["label"], query["target"], int(query["length"])))
            case ["api", "run", run_id, "attempt"]:
                self._json(results.attempt(run_id, query["label"], query["target"], int(query["length"]),
                                           int(query["trial"]), int(query["attempt"])))
            case ["api", "compare"]:
                self._json(results.compare(query["baseline"], query["candidate"]))
            case ["runs", run_id, "report", name]:
                self._report_file(run_id, name)
            case _:
                raise NotFound(f"no page {url.path}")

    def _report_file(self, run_id: str, name: str) -> None:
        report_dir = self.server.results.run_dir(run_id) / ledger.REPORT_DIR
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith(".") or not (report_dir / name).is_file():
            raise NotFound(f"no report file {name!r} for run {run_id!r} (run `llm-erm analyze` first)")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/"):
            kind += "; charset=utf-8"
        self._send(200, Path(report_dir / name).read_bytes(), kind, csp=REPORT_CSP)

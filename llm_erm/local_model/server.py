"""Serving the bundled model: llama.cpp's own OpenAI-compatible server (the `xllamacpp` wheel, CPU only).

`serve_forever()` runs the server in this process (llama.cpp serves until the process ends);
`LocalServer` runs it in a child process (`python -m llm_erm.local_model`) that it starts, waits for and
stops (tests, notebooks).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.local_model.weights import INSTALL_HINT, MODEL, model_path

HOST = "127.0.0.1"  # never anything else: the server has no key and no TLS


@dataclass(frozen=True)
class ServerSettings:
    port: int = 8080  # 0: a free one
    ctx_size: int = 4096  # tokens of context per request (prompt + answer)
    threads: int = 1  # one is stable on a shared machine; two collapse as soon as another process runs
    parallel: int = 1  # requests served at once (each gets ctx_size of context)
    alias: str = MODEL.alias
    metrics: bool = False  # GET /metrics (Prometheus counters: requests, prompt and predicted tokens)

    def check(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port {self.port} is not a TCP port: pass 1..65535, or 0 for a free one")
        if not 256 <= self.ctx_size <= 32768:
            raise UsageError(f"--ctx-size {self.ctx_size} is out of range: pass 256..32768 (the model's "
                             "training context is 32768)")
        if self.threads < 1 or self.parallel < 1:
            raise UsageError("--threads and --parallel must be at least 1")
        if not self.alias.strip():
            raise UsageError("--alias must not be empty: it is the --model name clients send")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _claim_port(port: int) -> int:
    """The port to listen on (a free one for 0); UsageError when it is taken."""
    if port == 0:
        return free_port()
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise UsageError(f"port {port} on {HOST} is not free ({exc.strerror}): pick another --port, "
                             "or 0 for a free one") from None
    return port


def _server_params(settings: ServerSettings, path: Path, port: int) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise UsageError(f"the llama.cpp server (xllamacpp) is not installed: {INSTALL_HINT}") from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.hostnames = [HOST]
    params.port = port
    params.n_parallel = settings.parallel
    params.n_ctx = settings.ctx_size * settings.parallel  # the KV cache is shared out among the slots
    params.cpuparams.n_threads = settings.threads
    params.cpuparams_batch.n_threads = settings.threads
    params.model_alias = {settings.alias}
    params.endpoint_metrics = settings.metrics
    params.ui = False
    params.offline = True  # never reach a model hub
    return params


def serve_forever(settings: ServerSettings, say: Callable[[str], None] = print) -> None:
    """Serve the bundled model on 127.0.0.1 in this process until it is interrupted (Ctrl-C, SIGTERM)."""
    settings.check()
    path = model_path(say=say)
    port = _claim_port(settings.port)
    params = _server_params(settings, path, port)
    import xllamacpp

    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a kill, whenever it comes, ends it cleanly
        signal.signal(signum, lambda *_: stopped.set())
    server = xllamacpp.Server(params)  # returns once the model is loaded and the port is listening
    url = f"http://{HOST}:{port}/v1"
    say(f"serving {MODEL.description} at {url} as model {settings.alias!r} "
        f"({settings.ctx_size} tokens of context per request, {settings.threads} thread(s)); Ctrl-C stops it")
    say(f"  llm-erm run --proposer openai-chat --base-url {url} --model {settings.alias}")
    while not stopped.wait(3600):
        pass
    del server  # the process ends next, and llama.cpp's threads with it
    sys.stdout.flush()
    os._exit(0)  # llama.cpp's server threads do not join: leave without waiting for them


class LocalServer:
    """The bundled model served by a child process on 127.0.0.1; a context manager.

        with LocalServer(ServerSettings(port=0, ctx_size=2048)) as server:
            server.base_url   # http://127.0.0.1:<port>/v1
    """

    def __init__(self, settings: ServerSettings | None = None, log_path: Path | None = None,
                 ready_timeout_s: float = 180.0):
        self.settings = settings or ServerSettings(port=0)
        self.settings.check()
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.port = 0
        self._process: subprocess.Popen | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def model(self) -> str:
        return self.settings.alias

    def start(self) -> LocalServer:
        model_path()  # assemble and verify here, where a UsageError reaches the caller
        self.port = _claim_port(self.settings.port)
        settings = {**asdict(self.settings), "port": self.port}
        if self.log_path is None:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        else:
            self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen([sys.executable, "-m", "llm_erm.local_model", json.dumps(settings)],
                                         stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # a Ctrl-C in a terminal reaches us, not it
        deadline = time.monotonic() + self.ready_timeout_s
        while not self.healthy():
            if self._process.poll() is not None:
                log = self.log_tail()
                self.stop()
                raise RuntimeError(f"the llama.cpp server exited with {self._process.returncode} before it was "
                                   f"ready; its log ends:\n{log}")
            if time.monotonic() > deadline:
                log = self.log_tail()
                self.stop()
                raise RuntimeError(f"the llama.cpp server was not ready after {self.ready_timeout_s:g} s; its log "
                                   f"ends:\n{log}")
            time.sleep(0.2)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            return json.loads(response.read())

    def metrics(self) -> dict[str, float]:
        """The server's Prometheus counters (needs ServerSettings(metrics=True)), e.g.
        llamacpp:prompt_tokens_total, llamacpp:tokens_predicted_total."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[name] = float(value)
        return values

    def log_tail(self, chars: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


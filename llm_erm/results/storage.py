"""Where a run's files live: a local directory (a plain path or file://) or an object store (s3://, gs://, az://).

Every reader and writer of results/ goes through the few functions here, so the rest of the code composes
paths with `/` and never asks which kind it has. A local location is a pathlib.Path (as always); an object
store's is a universal_pathlib UPath over the provider's fsspec filesystem (s3fs for S3: the `s3` extra).
S3-compatible stores are found through the standard AWS_ENDPOINT_URL; credentials come from the provider's
usual environment variables or configuration, never from our config (they would reach the manifest).

Atomic writes: locally a temp file in the same directory, then a rename; on an object store one PUT of the
whole object (a reader sees the old object or the new one, never half). Object stores have no append and no
rename, so what needs them (the answer journal, trial claims) is built on whole objects and create-only
writes (S3's `If-None-Match: *`), see journal.py and claims.py.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from llm_erm.errors import UsageError

# The extra that provides each protocol's filesystem package (pip install 'llm-erm[<extra>]').
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
_SECRET_WORDS = ("secret", "password", "token", "credential", "key", "sas", "connection_string")

_UMASK = os.umask(0)
os.umask(_UMASK)

RunPath = Any  # pathlib.Path, or upath.UPath for an object store (same path API)


def protocol_of(location: str) -> str:
    head, sep, _ = str(location).partition("://")
    return head.lower() if sep else ""


def check_options(options: Mapping[str, Any] | None, where: str = "storage_options") -> None:
    """Refuse credentials in storage options: they would be written to the manifest. The provider's own
    environment variables (AWS_ACCESS_KEY_ID ...) or configuration files are the place for them."""
    def walk(value: Any, path: str) -> None:
        if isinstance(value, Mapping):
            for name, inner in value.items():
                lowered = str(name).lower()
                if any(word in lowered for word in _SECRET_WORDS) and lowered not in ("key_prefix",):
                    raise UsageError(f"{where}: {path}{name} looks like a credential: set it in the provider's "
                                     "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY ...), not in the config")
                walk(inner, f"{path}{name}.")

    walk(options or {}, "")


def resolve(location: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> RunPath:
    """A results location as a path object: Path for a local directory, UPath for an object store.

    An object store whose filesystem package is missing, or an unknown protocol, is one UsageError line
    (never a local folder named `s3:`)."""
    text = os.fspath(location)
    protocol = protocol_of(text)
    if protocol in ("", "file", "local"):
        return Path(text.split("://", 1)[1] if protocol else text).expanduser().resolve()
    check_options(options)
    import fsspec

    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise UsageError(f"--results-dir {text}: unknown storage protocol {protocol}://: use a local path, "
                         "file://, s3://, gs:// or az://") from None
    except ImportError:
        extra = EXTRAS.get(protocol, protocol)
        raise UsageError(f"--results-dir {text}: {protocol}:// needs the '{extra}' extra: "
                         f"pip install 'llm-erm[{extra}]'") from None
    from upath import UPath

    options = dict(options or {})
    if protocol in ("s3", "s3a") and "endpoint_url" not in options and os.environ.get("AWS_ENDPOINT_URL"):
        # part of fsspec's instance-cache key, so another endpoint gets its own filesystem object
        options["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    # Listings are never cached: other workers add journal objects, claims and trial files all the time.
    return UPath(text.rstrip("/"), use_listings_cache=False, **options)


def is_remote(path: RunPath) -> bool:
    return not isinstance(path, Path)


def display(path: RunPath) -> str:
    return str(path)


def fs_path(path: RunPath) -> tuple[Any, str]:
    """(fsspec filesystem, path on it) of a location: for pyarrow and bulk operations."""
    if not is_remote(path):
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(path)
    return path.fs, path.path


def child(path: RunPath, name: str) -> RunPath:
    """`path / name` from a path string the filesystem returned (a listing) back to a path object."""
    return path / name


def write_bytes(path: RunPath, data: bytes) -> None:
    """Write a whole file atomically (temp + rename locally, one PUT on an object store)."""
    if is_remote(path):
        fs, p = fs_path(path)
        fs.pipe_file(p, data)
        return
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write(path: RunPath, write: Callable[[str], Any]) -> None:
    """Call `write(tmp)` on a local temp file, then publish it at `path` as one atomic step."""
    if is_remote(path):
        fd, tmp = tempfile.mkstemp(prefix="llm-erm-", suffix=".tmp")
        os.close(fd)
        try:
            write(tmp)
            write_bytes(path, Path(tmp).read_bytes())
        finally:
            Path(tmp).unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create(path: RunPath, data: bytes) -> bool:
    """Create `path` holding `data` only if nothing is there: True when this call created it.

    Locally O_CREAT|O_EXCL (atomic on POSIX filesystems, NFS v3+ included); on an object store a
    conditional PUT (`If-None-Match: *`), which S3 and S3-compatible stores that support it honour atomically.
    """
    if is_remote(path):
        fs, p = fs_path(path)
        try:
            fs.pipe_file(p, data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:  # s3fs maps a 412 PreconditionFailed to a generic OSError on some versions
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                return False
            raise
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def names(directory: RunPath) -> list[str]:
    """The names directly under `directory` (files and folders), fresh from the store; [] when none."""
    if not is_remote(directory):
        try:
            return sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
    fs, p = fs_path(directory)
    try:
        entries = fs.ls(p, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)


def find(directory: RunPath) -> list[str]:
    """Every file under `directory`, as paths relative to it (one paginated listing on an object store)."""
    if not is_remote(directory):
        root = str(directory)
        out = []
        for dirpath, _dirs, files in os.walk(root):
            rel = os.path.relpath(dirpath, root)
            out += [name if rel == "." else f"{rel}/{name}" for name in files]
        return sorted(out)
    fs, p = fs_path(directory)
    try:
        found = fs.find(p)
    except FileNotFoundError:
        return []
    prefix = p.rstrip("/") + "/"
    return sorted(f[len(prefix):] for f in found if f.startswith(prefix))


def read_many(paths: list[RunPath]) -> dict[int, bytes]:
    """The bytes of each path (by index) that still exists; concurrent GETs on an object store."""
    if not paths:
        return {}
    if not is_remote(paths[0]):
        out = {}
        for i, path in enumerate(paths):
            try:
                out[i] = Path(path).read_bytes()
            except FileNotFoundError:
                continue
        return out
    fs, _ = fs_path(paths[0])
    keys = [fs_path(p)[1] for p in paths]
    got = fs.cat(keys, on_error="omit")
    return {i: got[k] for i, k in enumerate(keys) if k in got}


def publish_dir(local_dir: Path, target: RunPath) -> None:
    """Copy a local folder's files to `target` (each one whole object), then remove what it no longer has."""
    new = {str(p.relative_to(local_dir)): p for p in sorted(local_dir.rglob("*")) if p.is_file()}
    for rel, path in new.items():
        write_bytes(target / rel, path.read_bytes())
    for rel in find(target):
        if rel not in new:
            delete(target / rel)


def delete(path: RunPath) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def mtime(path: RunPath) -> float:
    return float(path.stat().st_mtime)


def ensure_writable(location: RunPath) -> None:
    """Refuse a results location no run could write to (one line), before any work."""
    if not is_remote(location):
        return
    fs, p = fs_path(location)
    probe = f"{p.rstrip('/')}/.llm-erm-write-probe"
    try:
        fs.pipe_file(probe, b"ok")
        fs.rm_file(probe)
    except Exception as exc:  # noqa: BLE001 - any failure here is the user's location or credentials
        raise UsageError(f"--results-dir {location}: cannot write there ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}): check the bucket, "
                         "AWS_ENDPOINT_URL and the credentials in the environment") from None


class Mirror:
    """A local, read-only copy of the runs under an object-store location, for readers built on a local
    directory (the viewer walks and stats files). `sync()` is one listing plus a GET of each object that is
    new or changed since the last sync (by size and modification time); objects gone from the store go here too.
    Files keep the object's modification time, so the reader's change detection works unchanged."""

    def __init__(self, location: RunPath, local_dir: Path, skip: tuple[str, ...] = ("journal",)):
        self.location = location
        self.local = Path(local_dir)
        self.skip = skip  # folders a reader never needs (the journal: one object per answer)
        self._seen: dict[str, tuple[int, float]] = {}

    def sync(self) -> int:
        """Bring the copy up to date; returns the number of files fetched."""
        fs, root = fs_path(self.location)
        prefix = root.rstrip("/") + "/"
        try:
            listing = fs.find(root, detail=True)
        except FileNotFoundError:
            listing = {}
        current: dict[str, tuple[int, float]] = {}
        for key, info in listing.items():
            rel = key[len(prefix):] if key.startswith(prefix) else None
            if not rel or any(f"/{part}/" in f"/{rel}" for part in self.skip):
                continue
            modified = info.get("LastModified") or info.get("mtime")
            stamp = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0)
            current[rel] = (int(info.get("size") or 0), stamp)
        changed = [rel for rel, sig in current.items() if self._seen.get(rel) != sig]
        got = fs.cat([prefix + rel for rel in changed], on_error="omit") if changed else {}
        for rel in changed:
            data = got.get(prefix + rel)
            if data is None:
                continue
            target = self.local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
            os.utime(target, (current[rel][1], current[rel][1]))
            self._seen[rel] = current[rel]
        for rel in set(self._seen) - set(current):
            (self.local / rel).unlink(missing_ok=True)
            del self._seen[rel]
        return len(changed)

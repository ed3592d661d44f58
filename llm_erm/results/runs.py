"""A run's folder: `<results dir>/<run id>`, where the run id is a plain name.

One rule for every option that names a run (run, status, export, analyze, generalize, compare, the flows):
`..` would write a run's attempts, journal and report beside the results directory, `.` into it, and a
path or a symlink anywhere at all. So a run id is letters, digits and `._+=-`, starting with a letter or a
digit, and the folder it names must resolve to a direct child of the results directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.results import storage
from llm_erm.results.storage import RunPath

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,127}")


def run_id_problem(run_id: str) -> str | None:
    """Why `run_id` is not a plain name, or None when it is."""
    if RUN_ID.fullmatch(run_id):
        return None
    return (f"run id {run_id!r} is not a plain name: use letters, digits and . _ + = - (starting with a letter "
            "or digit, at most 128 characters), e.g. grid-3f9c2a1b0d4e")


def run_folder(results_dir: str | Path, run_id: str, option: str = "--run-id",
               options: Mapping[str, Any] | None = None) -> RunPath:
    """The run's folder under results_dir, or a UsageError naming the option when it would lie elsewhere."""
    problem = run_id_problem(run_id)
    if problem is not None:
        raise UsageError(f"{option}: {problem}")
    location = storage.resolve(results_dir, options)
    if storage.is_remote(location):  # keys, not a tree: a plain name is a child of the prefix, no link can lead out
        return location / run_id
    root = Path(location).resolve()
    folder = root / run_id
    if folder.resolve().parent != root:  # a symlinked run folder that points elsewhere
        raise UsageError(f"{option} {run_id}: {folder} resolves to {folder.resolve()}, outside {root}: a run's "
                         "folder must lie in --results-dir (copy the run there instead of linking it)")
    return folder


def check_writable(path: str | Path, option: str) -> None:
    """UsageError unless `path` is (or can be created as) a writable directory; leaves nothing behind.

    Asked of the filesystem itself (a probe file in the deepest existing directory, removed at once):
    permission bits do not tell a read-only mount, and root passes every access() check."""
    import os
    import tempfile

    if storage.protocol_of(str(path)) not in ("", "file"):  # an object store: a probe object, written and removed
        storage.ensure_writable(storage.resolve(str(path)))
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{option} {path} is a file, not a directory: pass a directory")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, so the directory cannot be created")
    try:
        fd, probe = tempfile.mkstemp(prefix=".llm-erm-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{option} {path} is not writable ({exc.strerror} in {existing.resolve()}): pass a "
                         "directory you can write to") from None

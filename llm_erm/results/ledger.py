"""The Parquet ledger: atomic per-trial files, the resume scan, and reading a run back.

Layout of results/<run_id>/ (see schema.py for the columns):
    manifest.json
    attempts/<method label>/<target>/L<length>/trial<t>.parquet
    summary.parquet
    journal/                     every model answer, the moment it arrived (see journal.py)
    report/                      written by the analysis
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llm_erm.results import storage
from llm_erm.results.journal import storable_text
from llm_erm.results.schema import ATTEMPT_SCHEMA

ATTEMPTS_DIR = "attempts"
SUMMARY_FILE = "summary.parquet"
MANIFEST_FILE = "manifest.json"
REPORT_DIR = "report"
TRIAL_GLOB = "*/*/L*/trial*.parquet"  # under attempts/: label / target / length / trial


def trial_path(run_dir: Path, label: str, target: str, length: int, trial: int) -> Path:
    return run_dir / ATTEMPTS_DIR / label / target / f"L{length}" / f"trial{trial}.parquet"


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temp file, then publish it whole (rename, or one PUT on an object store)."""
    storage.atomic_write(path, write)


def write_table(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_frame(path: Path, frame: Any) -> None:
    """A pandas DataFrame as a Parquet file, atomically (summaries and report tables)."""
    write_table(path, pa.Table.from_pandas(frame, preserve_index=False))


def write_json(path: Path, data: Any) -> None:
    storage.write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))


def attempts_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows (dicts keyed by column name; missing columns become null) -> a table of ATTEMPT_SCHEMA."""
    rows = list(rows)
    # An answer may hold lone surrogates (the journal keeps them exactly): escaped here, as UTF-8 needs.
    columns = {name: [storable_text(v) if isinstance(v := row.get(name), str) else v for row in rows]
               for name in ATTEMPT_SCHEMA.names}
    return pa.table(columns, schema=ATTEMPT_SCHEMA)


def write_trial(run_dir: Path, label: str, target: str, length: int, trial: int,
                rows: Iterable[dict[str, Any]]) -> Path:
    path = trial_path(run_dir, label, target, length, trial)
    write_table(path, attempts_table(rows))
    return path


def trial_files(run_dir: Path) -> list[Path]:
    """Every trial file of the run (one listing of attempts/, paginated, on an object store)."""
    root = run_dir / ATTEMPTS_DIR
    if not storage.is_remote(run_dir):
        return sorted(root.glob(TRIAL_GLOB))
    return [root / rel for rel in storage.find(root) if fnmatch.fnmatchcase(rel, TRIAL_GLOB) and rel.count("/") == 3]


def finished_trials(run_dir: Path) -> set[tuple[str, str, int, int]]:
    """(method label, target, length, trial) of every trial whose file is in the ledger: the resume scan."""
    return {(p.parent.parent.parent.name, p.parent.parent.name, int(p.parent.name[1:]), int(p.stem[len("trial"):]))
            for p in trial_files(run_dir)}


def read_attempts(run_dir: Path) -> pa.Table:
    """Every attempt row of a run (an empty table of the schema when none)."""
    import pyarrow.dataset as ds  # here: it imports pandas, which a run's start does not otherwise need

    paths = trial_files(run_dir)
    if not paths:
        return ATTEMPT_SCHEMA.empty_table()
    if not storage.is_remote(run_dir):
        return ds.dataset([str(p) for p in paths], format="parquet", schema=ATTEMPT_SCHEMA).to_table()
    fs, _ = storage.fs_path(run_dir)
    files = [storage.fs_path(p)[1] for p in paths]
    return ds.dataset(files, format="parquet", schema=ATTEMPT_SCHEMA, filesystem=fs).to_table()


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file of the run (local or in an object store)."""
    if not storage.is_remote(path):
        return pq.read_table(path, columns=columns)
    with path.open("rb") as handle:
        return pq.read_table(handle, columns=columns)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}

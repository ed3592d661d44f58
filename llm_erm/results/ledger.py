"""The Parquet ledger: atomic per-trial files, the resume scan, and reading a run back.

Layout of results/<run_id>/ (see schema.py for the columns):
    manifest.json
    attempts/<method label>/<target>/L<length>/trial<t>.parquet
    summary.parquet
    journal/                     every model answer, the moment it arrived (see journal.py)
    report/                      written by the analysis
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llm_erm.results.journal import storable_text
from llm_erm.results.schema import ATTEMPT_SCHEMA

ATTEMPTS_DIR = "attempts"
SUMMARY_FILE = "summary.parquet"
MANIFEST_FILE = "manifest.json"
REPORT_DIR = "report"
TRIAL_GLOB = "*/*/L*/trial*.parquet"  # under attempts/: label / target / length / trial


_UMASK = os.umask(0)
os.umask(_UMASK)


def trial_path(run_dir: Path, label: str, target: str, length: int, trial: int) -> Path:
    return run_dir / ATTEMPTS_DIR / label / target / f"L{length}" / f"trial{trial}.parquet"


def atomic_write(path: Path, write: Any) -> None:
    """Write through a temp file in the same directory, then rename: readers never see half a file."""
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


def write_table(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_frame(path: Path, frame: Any) -> None:
    """A pandas DataFrame as a Parquet file, atomically (summaries and report tables)."""
    write_table(path, pa.Table.from_pandas(frame, preserve_index=False))


def write_json(path: Path, data: Any) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")

    atomic_write(path, write)


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
    return sorted((run_dir / ATTEMPTS_DIR).glob(TRIAL_GLOB))


def finished_trials(run_dir: Path) -> set[tuple[str, str, int, int]]:
    """(method label, target, length, trial) of every trial whose file is in the ledger: the resume scan."""
    return {(p.parent.parent.parent.name, p.parent.parent.name, int(p.parent.name[1:]), int(p.stem[len("trial"):]))
            for p in trial_files(run_dir)}


def read_attempts(run_dir: Path) -> pa.Table:
    """Every attempt row of a run (an empty table of the schema when none)."""
    import pyarrow.dataset as ds  # here: it imports pandas, which a run's start does not otherwise need

    files = [str(p) for p in trial_files(run_dir)]
    if not files:
        return ATTEMPT_SCHEMA.empty_table()
    return ds.dataset(files, format="parquet", schema=ATTEMPT_SCHEMA).to_table()


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

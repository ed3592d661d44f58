"""The attempt rows of a run for the viewer: read once, then only the trial files that changed.

Files are found by globbing `**/trial*.parquet` under attempts/, so the reader does not depend on how deep
the layout is (attempts/<method_label>/<target>/L<length>/, and attempts/<target>/L<length>/ from before the
methods axis). Columns a file lacks (an older ledger) come back null. Only the columns the run, cell and
runs pages show are cached (LIGHT_COLUMNS; decoding a column costs about as much as opening the file): the text
columns (prompt, response, code) wait for one attempt's page, which reads every column of that one file.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llm_erm.results import ledger
from llm_erm.results.schema import ATTEMPT_SCHEMA

LIGHT_COLUMNS = frozenset({
    "run_id", "target", "target_name", "length", "trial", "attempt", "dataset_id", "proposer", "model",
    "response_model", "status", "train_acc", "val_acc", "test_acc", "prompt_tokens", "completion_tokens",
    "reasoning_tokens", "cached_tokens", "cost_usd", "latency_s", "signature", "truncated", "finish_reason",
    "reused_answer", "stopped_early", "selected", "code_lines", "ast_nodes", "first_error", "propose_error",
    "created_at", "sandbox", "selection_rule",
    # the methods axis (optional: an erm-only ledger has none of them)
    "method", "method_label", "n_train", "limit_split",
})
FILE_COLUMN = "_file"  # the trial file a row came from, relative to the run directory


def trial_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """{path relative to the run dir: (mtime_ns, size)} of every trial file under attempts/."""
    out: dict[str, tuple[int, int]] = {}
    root = run_dir / ledger.ATTEMPTS_DIR
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if name.startswith("trial") and name.endswith(".parquet"):
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # replaced between the listing and the stat
                    continue
                out[os.path.relpath(path, run_dir)] = (st.st_mtime_ns, st.st_size)
    return out


def read_light(path: Path, relative: str) -> pa.Table:
    """One trial file without its heavy columns, with the file's name as a column."""
    parquet = pq.ParquetFile(path)
    names = [n for n in parquet.schema_arrow.names if n in LIGHT_COLUMNS]
    table = parquet.read(columns=names)
    return table.append_column(FILE_COLUMN, pa.array([relative] * table.num_rows, pa.string()))


def _empty_light() -> pa.Table:
    fields = [f for f in ATTEMPT_SCHEMA if f.name in LIGHT_COLUMNS]
    return pa.schema([*fields, pa.field(FILE_COLUMN, pa.string())]).empty_table()


@dataclass
class _RunEntry:
    files: dict[str, tuple[tuple[int, int], pa.Table]] = field(default_factory=dict)
    frame: pd.DataFrame | None = None
    generation: int = 0  # bumped whenever the set of files or any file changed
    lock: threading.Lock = field(default_factory=threading.Lock)


class LedgerCache:
    """Per run directory: the light attempt frame, refreshed from the files that changed since last time."""

    def __init__(self) -> None:
        self._runs: dict[Path, _RunEntry] = {}
        self._lock = threading.Lock()

    def _entry(self, run_dir: Path) -> _RunEntry:
        with self._lock:
            return self._runs.setdefault(run_dir, _RunEntry())

    def frame(self, run_dir: Path) -> tuple[pd.DataFrame, int]:
        """(the run's light attempt rows, a generation number that changes whenever they do)."""
        entry = self._entry(run_dir)
        with entry.lock:
            current = trial_files(run_dir)
            changed = entry.frame is None or set(current) != set(entry.files) or any(
                entry.files[name][0] != signature for name, signature in current.items()
            )
            if not changed:
                return entry.frame, entry.generation
            files = {}
            for name, signature in current.items():
                cached = entry.files.get(name)
                if cached is not None and cached[0] == signature:
                    files[name] = cached
                    continue
                try:
                    files[name] = (signature, read_light(run_dir / name, name))
                except (FileNotFoundError, OSError, pa.ArrowInvalid):
                    continue  # vanished, or not a whole Parquet file (the ledger writes atomically; others may not)
            tables = [table for _, table in files.values()] or [_empty_light()]
            combined = pa.concat_tables([_empty_light(), *tables], promote_options="permissive")
            entry.files = files
            entry.frame = combined.to_pandas()
            entry.generation += 1
            return entry.frame, entry.generation


def read_row(run_dir: Path, relative: str, where: dict[str, object]) -> dict | None:
    """Every column of the row of one trial file that matches `where` (e.g. {"attempt": 2})."""
    table = pq.read_table(run_dir / relative)
    for row in table.to_pylist():
        if all(row.get(key) == value for key, value in where.items() if key in row):
            return row
    return None

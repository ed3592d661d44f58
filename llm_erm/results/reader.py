"""Every attempt row of a run, whatever the depth of its layout and whatever columns it has.

ledger.read_attempts reads attempts/<target>/L<length>/trial<t>.parquet with the schema's columns. The methods
axis moves trial files one level down (attempts/<method_label>/<target>/L<length>/) and adds columns the schema may
not list yet (method, method_label, n_train, method_extra, limit_split). This reader globs `**/trial*.parquet`
and keeps every column, so the analysis reads old and new runs alike. Once read_attempts does both, it can be
replaced by read_attempts.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from llm_erm.results import ledger
from llm_erm.results.schema import ATTEMPT_SCHEMA


def trial_files(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / ledger.ATTEMPTS_DIR).glob("**/trial*.parquet"))


def read_all_attempts(run_dir: Path) -> pd.DataFrame:
    """Every attempt row under attempts/ (any depth), the schema's columns first, then any others."""
    tables = [pq.read_table(path) for path in trial_files(run_dir)]
    combined = pa.concat_tables([ATTEMPT_SCHEMA.empty_table(), *tables], promote_options="permissive")
    return combined.to_pandas()

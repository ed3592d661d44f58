"""Exports of a run's attempt rows: JSONL and CSV with the original column set first, then ours."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from llm_erm.results import ledger
from llm_erm.results.prompts import with_prompts
from llm_erm.results.schema import ATTEMPT_SCHEMA

# The original runner's columns, in its order, so existing analysis scripts keep working.
ORIGINAL_COLUMNS = (
    "fn", "length", "attempt", "prompt", "text", "duration_ms", "cached_tokens", "prompt_tokens",
    "completion_tokens", "reasoning_tokens", "tool_uses", "tool_results_chars", "val_acc", "test_acc",
    "stopped_early", "compile_error",
)
_COMPILE_STATUSES = {"too_large", "no_code", "syntax_error", "no_function"}


def export_rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = with_prompts(run_dir, ledger.read_attempts(run_dir).to_pylist())
    ours = [c for c in ATTEMPT_SCHEMA.names if c not in ORIGINAL_COLUMNS]
    out = []
    for row in sorted(rows, key=lambda r: (r["target"], r["length"], r["trial"], r["attempt"])):
        original = {
            "fn": row["target"],
            "duration_ms": None if row["latency_s"] is None else round(row["latency_s"] * 1000.0, 3),
            "compile_error": row["first_error"] if row["status"] in _COMPILE_STATUSES else None,
        }
        merged = {**row, **original}
        out.append({c: merged.get(c) for c in (*ORIGINAL_COLUMNS, *ours)})
    return out


def write_export(run_dir: Path, fmt: str, output: Path) -> int:
    """Write the export atomically; returns the number of rows."""
    rows = export_rows(run_dir)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            if fmt == "jsonl":
                for row in rows:
                    fh.write(json.dumps(row, default=str) + "\n")  # ASCII: any answer, a lone surrogate too
            else:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else list(ORIGINAL_COLUMNS))
                writer.writeheader()
                writer.writerows(rows)

    ledger.atomic_write(output, write)
    return len(rows)

"""Each distinct prompt of a run, stored once: results/<run_id>/prompts/<sha256>.txt.

A trial's rows name their prompt by `prompt_sha256` (every attempt of a trial, every trial of a cell, sends
the same prompt: k x trials copies of thousands of characters otherwise). Readers (export, the viewer)
resolve the hash here; rows written before this layout carry the text in their `prompt` column, which wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from llm_erm.results.ledger import atomic_write

PROMPTS_DIR = "prompts"


def prompt_path(run_dir: Path, sha256: str) -> Path:
    return run_dir / PROMPTS_DIR / f"{sha256}.txt"  # a Path, or a UPath on an object store


def store_prompt(run_dir: Path, text: str) -> str:
    """Write the prompt once (atomically; content-addressed, so a second writer writes the same bytes); its
    sha256."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    path = prompt_path(run_dir, digest)
    if not path.exists():
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(text.encode("utf-8")))
    return digest


def read_prompt(run_dir: Path, sha256: str | None) -> str | None:
    """The stored prompt of this hash, or None (no hash, or not stored)."""
    if not sha256:
        return None
    try:
        return prompt_path(run_dir, sha256).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def with_prompts(run_dir: Path, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with `prompt` filled from the store where it is empty (the current layout); read once per hash."""
    cache: dict[str, str | None] = {}
    out = []
    for row in rows:
        if row.get("prompt") is None and row.get("prompt_sha256"):
            sha = row["prompt_sha256"]
            if sha not in cache:
                cache[sha] = read_prompt(run_dir, sha)
            row = {**row, "prompt": cache[sha]}
        out.append(row)
    return out

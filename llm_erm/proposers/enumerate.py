"""The `enumerate` proposer: the classical length-first program search, offline and free.

It sees exactly what a model sees, the prompt, and reads its training examples from the prompt's
data block. Attempt a of a trial gets the a-th best enumerated program (training accuracy, then
size); the enumeration runs once per prompt and budget and is remembered in-process, so the k
attempts of a trial cost one search. Strings (bits, digits, edge lists) go to the string DSL
(`dsl.py`); tabular rows `k:v,...` are read as the dicts `f` receives and go to the rule search
(`tabular_rules.py`: thresholds, category tests, and/or). Nothing here reads the request's target
or length: the prompt is all it knows.
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from typing import Any

from llm_erm.datasets.tabular.protocol import parse_row
from llm_erm.errors import UsageError
from llm_erm.proposers.base import PermanentProposerError, Proposal, ProposeRequest, Usage
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.dsl import DSL_VERSION, Enumeration, enumerate_programs
from llm_erm.proposers.tabular_rules import enumerate_rules

_FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_EXAMPLE = re.compile(r"(.+) -> ([01])")
_TABULAR_ROW = re.compile(r"[^:,]+:[^,]*(,[^:,]+:[^,]*)*")


def parse_training_examples(prompt: str) -> tuple[list[str], list[int]]:
    """The `<input> -> <0|1>` lines of the prompt's data block: its first fenced block made of them.

    Raises PermanentProposerError when the prompt has no such block: retrying the same prompt
    cannot help.
    """
    for block in _FENCED.findall(prompt):
        lines = [line for line in block.split("\n") if line.strip()]
        matches = [_EXAMPLE.fullmatch(line) for line in lines]
        if lines and all(matches):
            return [m.group(1) for m in matches], [int(m.group(2)) for m in matches]
    raise PermanentProposerError(
        "enumerate: the prompt has no fenced data block of '<input> -> <0|1>' lines to learn from; "
        "keep the ``` data block of the default template in a custom template"
    )


@lru_cache(maxsize=64)
def _search(prompt: str, max_programs: int, max_seconds: float) -> Enumeration:
    inputs, labels = parse_training_examples(prompt)
    if all(_TABULAR_ROW.fullmatch(x) for x in inputs):
        rows = [parse_row(x) for x in inputs]  # exactly the dicts the verifier passes to f
        return enumerate_rules(rows, labels, max_programs=max_programs, max_seconds=max_seconds)
    return enumerate_programs(inputs, labels, max_programs=max_programs, max_seconds=max_seconds)


def from_config(cfg: ProposerConfig) -> EnumerateProposer:
    return EnumerateProposer(max_programs=cfg.enumerate_max_programs, max_seconds=cfg.enumerate_max_seconds)


class EnumerateProposer:
    """Bottom-up enumeration of a small string/bit/integer DSL (see `llm_erm.proposers.dsl`)."""

    kind = "enumerate"

    def __init__(self, max_programs: int = 200_000, max_seconds: float = 20.0):
        if isinstance(max_programs, bool) or not isinstance(max_programs, int) or max_programs < 1:
            raise UsageError(f"enumerate max_programs must be a positive integer, got {max_programs!r}")
        if not max_seconds > 0:
            raise UsageError(
                f"enumerate max_seconds must be a positive number of seconds, got {max_seconds!r}"
            )
        self.max_programs = max_programs
        self.max_seconds = float(max_seconds)

    def preflight(self) -> None:
        """Nothing to check: no key, no network, no files."""

    def identity(self) -> dict[str, Any]:
        return {
            "provider": "enumerate",
            "max_programs": self.max_programs,
            "max_seconds": self.max_seconds,
            "dsl_version": DSL_VERSION,
        }

    def propose(self, request: ProposeRequest) -> Proposal:
        started = time.perf_counter()
        found = _search(request.prompt, self.max_programs, self.max_seconds)
        if not 1 <= request.attempt <= len(found.best):
            raise PermanentProposerError(
                f"enumerate: attempt {request.attempt} asks for program #{request.attempt}, but the search "
                f"kept {len(found.best)} distinct programs for this prompt"
            )
        program = found.best[request.attempt - 1]
        return Proposal(
            # The same JSON shape a model is asked for, so extraction is unambiguous even with a helper.
            text=json.dumps({"code": program.source}),
            usage=Usage(),
            latency_s=time.perf_counter() - started,
            model="enumerate",
            cost_usd=0.0,  # free, a known price, not an unpriced one
            finish_reason="stop",
            extra={
                "programs_enumerated": found.programs_enumerated,
                "distinct_programs": found.distinct_programs,
                "seconds": found.seconds,
                "train_acc": program.train_acc,
                "size": program.size,
                "budget_exhausted": found.budget_exhausted,
            },
        )

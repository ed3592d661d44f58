"""The grid configuration: one validated object shared by the CLI, the flows and the manifest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm_erm.errors import UsageError

ProposerKind = Literal["openai-responses", "openai-chat", "enumerate", "replay"]

# Fields that change what is computed, and therefore the default run id. Where results go, how fast
# they are computed and whether anything is spent do not.
_IDENTITY_EXCLUDE = {
    "run_id", "results_dir", "datasets_dir", "concurrency", "budget_usd", "dry_run", "analyze", "fan_out",
    "verify_workers", "retry_delay_s",
}


class GridConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    functions: list[str] | None = None  # None: the 12 paper targets
    lengths: list[int] | None = None  # None: each target's default lengths
    attempts: int = Field(5, ge=1)
    trials: int = Field(1, ge=1)
    train_size: int = Field(100, ge=2)
    val_size: int = Field(100, ge=2)
    test_size: int = Field(10000, ge=2)
    seed: int = 42
    alphabet: str | None = None  # binary | decimal, for user targets (module:callable)

    proposer: ProposerKind | None = None  # None: openai-responses with a key, else the offline enumerator
    model: str = "gpt-5"
    base_url: str | None = None
    reasoning_effort: str | None = "high"
    verbosity: str | None = "low"
    max_output_tokens: int = 20000
    tool_choice: str = "auto"
    code_interpreter: bool = False
    timeout_s: float = 1200.0
    replay_from: str | None = None
    enumerate_max_programs: int = 200_000
    enumerate_max_seconds: float = 20.0

    prompt_variant: str | None = None
    prompt_template: str | None = None  # path of a user template file
    sanitize: bool = True
    candidate_timeout_s: float = 10.0
    candidate_memory_mb: int = 1024
    retry_delay_s: float = Field(1.0, ge=0)  # first backoff delay of a transient failure; doubles per retry
    wave_size: int = Field(1, ge=1)  # attempts proposed in parallel per wave; 1 = sequential, max early-stop savings

    concurrency: int = Field(4, ge=1)  # trials in flight, and so model calls in flight with wave_size 1
    verify_workers: int | None = None  # sandbox processes; None: one per core
    budget_usd: float | None = Field(None, gt=0)
    run_id: str | None = None
    results_dir: str = "results"
    datasets_dir: str = "datasets"
    dry_run: bool = False
    analyze: bool = True
    fan_out: bool = False  # run each cell as a flow run of the erm-cell deployment

    @model_validator(mode="after")
    def _check(self) -> GridConfig:
        if self.run_id is not None and (not self.run_id or any(c in self.run_id for c in "/\\ ")):
            raise ValueError(f"run id {self.run_id!r} must be a non-empty name without slashes or spaces")
        from llm_erm.proposers.prompt import VARIANTS

        if self.prompt_variant is not None and self.prompt_variant not in VARIANTS:
            raise ValueError(f"unknown prompt variant {self.prompt_variant!r}: use one of {', '.join(VARIANTS)}")
        return self

    # --- derived -----------------------------------------------------------------------------------
    def resolved_proposer(self) -> ProposerKind:
        if self.proposer is not None:
            return self.proposer
        return "openai-responses" if os.environ.get("OPENAI_API_KEY") else "enumerate"

    def identity(self) -> dict:
        data = self.model_dump(exclude=_IDENTITY_EXCLUDE)
        data["proposer"] = self.resolved_proposer()
        return data

    def resolved_run_id(self) -> str:
        if self.run_id:
            return self.run_id
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"grid-{digest[:12]}"

    def run_dir(self) -> Path:
        return Path(self.results_dir).resolve() / self.resolved_run_id()

    def proposer_config(self):
        from llm_erm.proposers import ProposerConfig

        return ProposerConfig.from_options(
            kind=self.resolved_proposer(),
            model=self.model,
            base_url=self.base_url,
            reasoning_effort=self.reasoning_effort,
            verbosity=self.verbosity,
            max_output_tokens=self.max_output_tokens,
            tool_choice=self.tool_choice,
            code_interpreter=self.code_interpreter,
            timeout_s=self.timeout_s,
            replay_from=Path(self.replay_from) if self.replay_from else None,
            enumerate_max_programs=self.enumerate_max_programs,
            enumerate_max_seconds=self.enumerate_max_seconds,
        )

    def template_text(self) -> str | None:
        """The user's prompt template, read and checked (UsageError), or None for the paper's prompt."""
        from llm_erm.proposers.prompt import load_template

        return load_template(Path(self.prompt_template)) if self.prompt_template else None

    def dataset_specs(self):
        """Every cell's DatasetSpec, validated before any work (UsageError on the first bad one)."""
        from llm_erm.datasets import make_specs

        specs = make_specs(self.functions, self.lengths, train_size=self.train_size, val_size=self.val_size,
                           test_size=self.test_size, seed=self.seed, alphabet=self.alphabet)
        if not specs:
            raise UsageError("the grid is empty: name at least one function and length")
        return specs

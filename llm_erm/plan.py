"""What a grid would send, without sending it: the `--dry-run`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from llm_erm.config import GridConfig


def planned_prompts(config: GridConfig) -> Iterator[tuple[str, str]]:
    """(label, prompt) of every call the grid would make: builds the datasets, spends nothing."""
    from llm_erm.datasets import build_dataset
    from llm_erm.proposers.prompt import build_prompt

    template = config.template_text()
    for spec in config.dataset_specs():
        prompt = build_prompt(build_dataset(spec, Path(config.datasets_dir)), variant=config.prompt_variant,
                              template=template)
        for trial in range(1, config.trials + 1):
            for attempt in range(1, config.attempts + 1):
                yield f"{spec.target} L{spec.length} t{trial} a{attempt}", prompt

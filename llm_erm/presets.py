"""Named grids: `llm-erm run --preset NAME` fills in a GridConfig's fields (options given beside it win).

`paper-table`: the paper's table (analysis/paper_reference.json): its 13 tasks at n = 100 with the paper's
200 labelled examples (100 train + 100 val, 10 000 test), and every method that runs here offline without a
key: xgboost under the paper's baseline protocol (the official runner's: train split, its grid, cv=5, 10
seeds), sgd (a small transformer from scratch, CPU) and erm (the OpenAI proposer when OPENAI_API_KEY is
set, else the offline `enumerate` proposer). icl and finetune need a model server or local weights: add them
with --methods when you have them. Resumable like any run: the same options give the same run id.
"""

from __future__ import annotations

from typing import Any

from llm_erm.errors import UsageError


def _paper_table() -> dict[str, Any]:
    from llm_erm.analysis.paper_table import reference

    ref = reference()
    return {
        "functions": [row["target"] for row in ref["rows"]],
        "lengths": [int(ref["length"])],
        "methods": [{"method": "erm"}, {"method": "xgboost"}, {"method": "sgd"}],
        "baseline_protocol": "paper",
    }


PRESETS = {"paper-table": _paper_table}


def preset_fields(name: str) -> dict[str, Any]:
    """The GridConfig fields of preset `name` (UsageError naming the presets for an unknown one)."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}")
    return PRESETS[name]()

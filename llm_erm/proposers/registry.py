"""Proposers by name. A new provider is one module with a callable taking a ProposerConfig (usually its
class), plus one line here
(or, for a third-party package, an entry point in the group `llm_erm.proposers`:

    [project.entry-points."llm_erm.proposers"]
    my-provider = "my_package.module:MyProposer"

Modules are imported only when their proposer is made, so `--help` and offline runs stay fast.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from llm_erm.errors import UsageError
from llm_erm.proposers.base import Proposer
from llm_erm.proposers.config import ProposerConfig

ENTRY_POINT_GROUP = "llm_erm.proposers"

BUILTIN = {
    "openai-responses": "llm_erm.proposers.openai_api:ResponsesProposer",
    "openai-chat": "llm_erm.proposers.openai_api:ChatProposer",
    "anthropic": "llm_erm.proposers.anthropic_api:AnthropicProposer",
    "gemini": "llm_erm.proposers.gemini_api:GeminiProposer",
    "enumerate": "llm_erm.proposers.enumerate:from_config",
    "replay": "llm_erm.proposers.replay:from_config",
}


@lru_cache(maxsize=1)
def registered() -> dict[str, str]:
    """Every proposer kind and where it lives ("module:attribute"); built-ins win over entry points."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def proposer_kinds() -> list[str]:
    return sorted(registered())


def check_kind(kind: str) -> str:
    if kind not in registered():
        raise UsageError(f"unknown proposer {kind!r}: use one of {', '.join(proposer_kinds())}")
    return kind


def make_proposer(cfg: ProposerConfig) -> Proposer:
    """The proposer for cfg's kind. Cheap: no network, no file read (preflight() checks those)."""
    kind = check_kind(cfg.resolved_kind())
    module, _, attribute = registered()[kind].partition(":")
    try:
        factory = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"proposer {kind!r} cannot be loaded from {registered()[kind]} ({exc}): "
                         "is its package installed?") from None
    return factory(cfg.resolved())

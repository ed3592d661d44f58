"""Proposers: where candidate programs come from (OpenAI Responses/Chat, enumeration, replay, plug-ins)."""

from llm_erm.proposers.base import (
    PermanentProposerError,
    Proposal,
    Proposer,
    ProposeRequest,
    ProposerError,
    TransientProposerError,
    Usage,
)
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.registry import make_proposer, proposer_kinds

__all__ = [
    "PermanentProposerError",
    "Proposal",
    "ProposeRequest",
    "Proposer",
    "ProposerConfig",
    "ProposerError",
    "TransientProposerError",
    "Usage",
    "make_proposer",
    "proposer_kinds",
]

"""Proposers: where candidate programs come from (OpenAI Responses/Chat, enumeration, replay)."""

from llm_erm.proposers.base import (
    PermanentProposerError,
    Proposal,
    Proposer,
    ProposeRequest,
    TransientProposerError,
    Usage,
)
from llm_erm.proposers.config import ProposerConfig, make_proposer

__all__ = [
    "PermanentProposerError",
    "Proposal",
    "ProposeRequest",
    "Proposer",
    "ProposerConfig",
    "TransientProposerError",
    "Usage",
    "make_proposer",
]

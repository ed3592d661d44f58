"""What the proposers built on a provider's own SDK (Anthropic, Gemini) share: settings, key, identity, cost."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlparse

from llm_erm.errors import UsageError
from llm_erm.proposers.config import ProposerConfig
from llm_erm.proposers.pricing import CostBasis, cost_basis

KEYLESS_PLACEHOLDER = "no-key"  # a local server of the provider's protocol ignores the key; the SDK wants one


class SdkProposer:
    """A proposer for one provider: `kind`, its default model, key variable, base URL and the domain its own
    API lives under (a base URL elsewhere is a local server or a gateway: keyless, a local output cap)."""

    kind = ""
    provider = ""  # the name in messages: "Anthropic", "Gemini"
    default_model = ""
    key_env_default = ""
    default_base_url = ""
    hosted_domain = ""

    def __init__(self, cfg: ProposerConfig):
        self.cfg = cfg
        self.model = cfg.model_for(self.default_model)
        self.key_env = cfg.key_env_for(self.key_env_default)
        self.base_url = (cfg.base_url or self.default_base_url).rstrip("/")
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def hosted(self) -> bool:
        return self.cfg.base_url is None or (urlparse(self.cfg.base_url).hostname or "").endswith(self.hosted_domain)

    def check_base_url(self) -> None:
        if self.cfg.base_url is not None:
            from llm_erm.proposers.openai_api import check_base_url

            check_base_url(self.cfg.base_url)

    def identity(self) -> dict[str, Any]:
        return {"provider": self.kind, "base_url": self.base_url, "model": self.model,
                "params": self.request_params(), "tools": self.tools()}

    def tools(self) -> list[str]:
        return ["code_execution"] if self.cfg.code_interpreter else []

    def cost_basis(self) -> CostBasis:
        return cost_basis(self.model, self.output_cap())

    def request_params(self) -> dict[str, Any]:
        raise NotImplementedError

    def output_cap(self) -> int:
        raise NotImplementedError

    def _key(self) -> str:
        """The API key; UsageError when the provider's own API needs one that is missing or malformed."""
        value = os.environ.get(self.key_env)
        if value is None or not value.strip():
            if not self.hosted:
                return KEYLESS_PLACEHOLDER
            state = "is not set" if value is None else "is empty"
            raise UsageError(f"{self.key_env} {state}: export {self.key_env}=<your {self.provider} API key> before "
                             "the run")
        if any(ch.isspace() for ch in value) or not value.isascii() or not value.isprintable():
            raise UsageError(f"{self.key_env} is malformed (whitespace or control characters): set it to the bare key")
        return value

"""Authentication preflight: is the key accepted (and, on the provider's own API, the model there) before
the run starts a server, builds datasets or makes a paid call?

One free request per proposer, through the provider's own client: the models endpoint (OpenAI and
OpenAI-compatible servers: `GET /models`, or `GET /models/{model}` on api.openai.com; Anthropic:
`GET /v1/models/{model}`; Gemini: `models.get`). No tokens are spent. A refused key (401, 403; Gemini's
400 "API key not valid") and, on the provider's own API, a model it does not have (404) refuse the run
in one line, exit 2. Anything else (a server without a models endpoint, a timeout, a 5xx) is not
evidence either way: the run goes on, and its calls report their own errors.
"""

from __future__ import annotations

from typing import Any

from llm_erm.errors import UsageError

PROBE_TIMEOUT_S = 10.0


def check_access(proposer: Any) -> None:
    """UsageError when the proposer's API refuses its key (or, hosted, its model); else nothing."""
    kind = getattr(proposer, "kind", "")
    if kind in ("openai-responses", "openai-chat"):
        _check_openai(proposer)
    elif kind == "anthropic":
        client = proposer._get_client().with_options(timeout=PROBE_TIMEOUT_S)
        _judge(lambda: client.models.retrieve(proposer.model), "Anthropic", proposer.base_url, proposer.key_env,
               proposer.model, proposer.hosted)
    elif kind == "gemini":
        client = proposer._get_client()
        _judge(lambda: client.models.get(model=proposer.model), "Gemini", proposer.base_url, proposer.key_env,
               proposer.model, proposer.hosted)


def _check_openai(proposer: Any, check_model: bool | None = None) -> None:
    from llm_erm.proposers.openai_api import OPENAI_BASE_URL, is_openai_hosted

    cfg = proposer.cfg
    hosted = is_openai_hosted(cfg.base_url) if check_model is None else check_model
    client = proposer._get_client().with_options(timeout=PROBE_TIMEOUT_S)
    # A local server (vLLM, llama.cpp) may serve any name or lack GET /models/{id}: only its key is judged.
    probe = (lambda: client.models.retrieve(cfg.model)) if hosted else (lambda: client.models.list())
    _judge(probe, "the OpenAI API" if is_openai_hosted(cfg.base_url) else "the server",
           cfg.base_url or OPENAI_BASE_URL, cfg.api_key_env, cfg.model, hosted)


def _judge(probe, who: str, base_url: str, key_env: str, model: str | None, check_model: bool) -> None:
    try:
        probe()
    except Exception as exc:  # noqa: BLE001 - each SDK has its own error classes; the status is what counts
        status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
        said = " ".join(str(getattr(exc, "message", None) or exc).split())[:200]
        refused_key = status in (401, 403) or (status == 400 and "api key" in said.lower())
        if refused_key:
            raise UsageError(f"{who} at {base_url} refused the key in {key_env} ({status}: {said}): set a valid "
                             f"key in {key_env}; nothing was run") from None
        if status == 404 and check_model:
            raise UsageError(f"{who} at {base_url} has no model {model!r} for this key (404: {said}): check "
                             "--model; nothing was run") from None

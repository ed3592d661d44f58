"""In-context learning: a model labels each test input directly from the examples (the paper's ICL baseline).

The prompt is upstream's (DLFundamentals/LLM_ERM, in_context_learning), byte for byte: the examples (the cell's
train + val lines, in stored order: the store's splits are already random, so upstream's extra shuffle is
not repeated), then one test input, then the request for {"label": ...}. Tabular targets say "tabular input
data" as the fork does. One call per test input, through the official openai client, to Chat Completions or
to the legacy Completions endpoint (which applies no chat template, as upstream's vLLM `generate` did), with
the sampling parameters sent explicitly (upstream's: temperature 0.2, top_p 0.95, 1 024 tokens).

Two parsers, recorded in every row: `upstream` (the greedy {...} JSON, else a bare 0/1) and `fork` (the first
strict {"label": 0|1}, else the last flat object whose label is 0/1; no bare digit).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from llm_erm.errors import UsageError
from llm_erm.proposers.base import Usage

SETTINGS = {
    "api": ("chat", "chat | completions (no chat template, as upstream's vLLM generate)"),
    "test_prompts": (100, "test inputs asked per cell, half of each label (upstream: 100)"),
    "parser": ("upstream", "upstream | fork"),
    "temperature": (0.2, "sampling temperature (upstream: 0.2)"),
    "top_p": (0.95, "nucleus sampling (upstream: 0.95)"),
    "max_tokens": (1024, "output cap per answer (upstream: 1024)"),
    "structured": (False, "ask for {\"label\": \"0\"|\"1\"} with a JSON schema (changes the baseline: off by default)"),
}
TRUNCATION_RATIO = 0.5  # a server that reports far fewer prompt tokens than the prompt holds cut it (Ollama)

_STATEMENT = {
    "tabular": "You are given tabular input data (comma-separated feature:value pairs) and their corresponding "
               "binary outputs ('0' or '1').",
}
_TAIL = (" Your task is to analyze the provided examples to understand the underlying pattern or function. Then, "
         "for the final test input, predict its correct label.")
_ASK = ('Based on the examples, what is the label for the test input? You must output ONLY a single JSON object '
        'in the format: {"label": "<your predicted label>"}.')
LABEL_SCHEMA = {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": {
    "type": "object", "properties": {"label": {"type": "string", "enum": ["0", "1"]}}, "required": ["label"],
    "additionalProperties": False}}}


def resolve_settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ICL settings with defaults filled; UsageError naming an unknown key or a bad value."""
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise UsageError(f"icl has no setting {unknown[0]!r}: use {', '.join(SETTINGS)}")
    out = {name: settings.get(name, default) for name, (default, _) in SETTINGS.items()}
    if out["api"] not in ("chat", "completions"):
        raise UsageError(f"icl setting api={out['api']!r}: use chat or completions")
    if out["parser"] not in ("upstream", "fork"):
        raise UsageError(f"icl setting parser={out['parser']!r}: use upstream or fork")
    if not isinstance(out["test_prompts"], int) or out["test_prompts"] < 2 or out["test_prompts"] % 2:
        raise UsageError(f"icl setting test_prompts={out['test_prompts']!r}: use a positive even number")
    if not isinstance(out["max_tokens"], int) or out["max_tokens"] < 1:
        raise UsageError(f"icl setting max_tokens={out['max_tokens']!r}: use a positive integer")
    return out


def build_prompt(examples: list[str], test_input: str, length: int, alphabet: str) -> str:
    """Upstream's ICL prompt for one test input (the examples are `<input> -> <label>` lines)."""
    statement = _STATEMENT.get(alphabet) or (
        f"You are given input vectors (type: {'decimal' if alphabet == 'decimal' else 'binary'}, length: {length}) "
        "and their corresponding binary outputs ('0' or '1').")
    return ("**Problem Statement:**\n" + statement + _TAIL + "\n\n"
            "**Data Examples:**\n```\n" + "\n".join(examples) + "\n```\n\n"
            "**Test Input:**\n```\n" + test_input + "\n```\n\n" + _ASK)


def test_selection(labels: list[int], n: int) -> list[int]:
    """Indices of the first n/2 test inputs of each label, in stored order: a balanced subset."""
    half, taken, out = n // 2, {0: 0, 1: 0}, []
    for i, label in enumerate(labels):
        if taken[label] < half:
            taken[label] += 1
            out.append(i)
    if len(out) < n:
        raise UsageError(f"icl asks {n} test inputs but the test split has only {len(out)} balanced ones: "
                         "lower the icl setting test_prompts")
    return out


def test_prompts(dataset: Any, settings: Mapping[str, Any]) -> list[tuple[int, str]]:
    """(test index, prompt) of every test input a cell asks, exactly as sent: the run and the dry run use this."""
    examples = dataset.split("train").lines + dataset.split("val").lines
    test = dataset.split("test")
    return [(index, build_prompt(examples, test.texts[index], dataset.spec.length, dataset.target.alphabet))
            for index in test_selection(test.labels, settings["test_prompts"])]


# -- parsers ------------------------------------------------------------------------------------
_GREEDY = re.compile(r"\{.*\}", re.DOTALL)
_STRICT = re.compile(r"""\{"label":\s*["']?([01])["']?\}""")
_FLAT = re.compile(r"\{[^{}]*\}")


def parse_upstream(text: str) -> str | None:
    """Upstream's parser: the greedy {...} span as JSON with a `label` (any value, as text), else a bare 0/1."""
    match = _GREEDY.search(text)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and "label" in data:
            return str(data["label"]).strip()
    bare = text.strip().replace("'", "").replace('"', "")
    return bare if bare in ("0", "1") else None


def parse_fork(text: str) -> str | None:
    """The fork's parser: the first strict {"label": 0|1}, else the last flat object whose label is 0 or 1."""
    match = _STRICT.search(text)
    if match:
        return match.group(1)
    for candidate in reversed(_FLAT.findall(text)):
        if "label" not in candidate:
            continue
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and str(data.get("label")).strip() in ("0", "1"):
            return str(data["label"]).strip()
    return None


PARSERS = {"upstream": parse_upstream, "fork": parse_fork}


# -- asking -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    text: str
    usage: Usage
    latency_s: float
    model: str
    cost_usd: float | None
    finish_reason: str | None
    response_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Asker:
    """Asks one OpenAI-compatible endpoint for ICL labels; errors are the proposers' Transient/Permanent ones."""

    def __init__(self, proposer_config, settings: dict[str, Any]):
        from llm_erm.proposers.openai_api import ChatProposer

        self.settings = settings
        # The chat proposer owns the client, the key, the base URL and the error mapping: reuse them.
        self._chat = ChatProposer(proposer_config.model_copy(update={"kind": "openai-chat"}))
        self.cfg = self._chat.cfg

    def preflight(self) -> None:
        self._chat.preflight()

    def identity(self) -> dict[str, Any]:
        return {"provider": f"icl-{self.settings['api']}", "base_url": self._chat.identity()["base_url"],
                "model": self.cfg.model, "params": self.request_params()}

    def cost_basis(self):
        """How the dry run prices an answer as `ask` does: the model's list price (icl sends no service tier
        and is never batched), each answer at this method's output cap."""
        from llm_erm.proposers.pricing import cost_basis

        return cost_basis(self.cfg.model, self.settings["max_tokens"])

    def request_params(self) -> dict[str, Any]:
        s = self.settings
        params: dict[str, Any] = {"temperature": s["temperature"], "top_p": s["top_p"], "max_tokens": s["max_tokens"]}
        if s["structured"] and s["api"] == "chat":
            params["response_format"] = LABEL_SCHEMA
        return params

    def ask(self, prompt: str, seed: int | None) -> Answer:
        import openai

        from llm_erm.proposers.base import TransientProposerError
        from llm_erm.proposers.openai_api import chat_usage, classify_error

        client = self._chat._get_client()
        extra = {"seed": seed} if self.cfg.send_seed and seed is not None else {}
        started = time.monotonic()
        endpoint = "chat/completions" if self.settings["api"] == "chat" else "completions"
        try:
            if self.settings["api"] == "chat":
                response = client.chat.completions.create(model=self.cfg.model, messages=[{"role": "user",
                                                          "content": prompt}], **self.request_params(), **extra)
                choice = response.choices[0]
                text = choice.message.content or ""
            else:
                response = client.completions.create(model=self.cfg.model, prompt=prompt, **self.request_params(),
                                                     **extra)
                choice = response.choices[0]
                text = choice.text or ""
        except openai.OpenAIError as exc:
            raise classify_error(exc, f"{client.base_url}{endpoint}", self.cfg) from exc
        except (ValueError, AttributeError, TypeError, IndexError) as exc:
            raise TransientProposerError(f"malformed response from {client.base_url}{endpoint}: {exc}") from exc
        usage = chat_usage(getattr(response, "usage", None))
        model = response.model or self.cfg.model
        return Answer(text, usage, time.monotonic() - started, model, self._chat._cost(model, usage),
                      choice.finish_reason, response.id)

"""Anthropic and Gemini proposers through their official SDKs, against wire-protocol servers of their APIs
on 127.0.0.1 (llm_erm.testing.anthropic_wire, gemini_wire): request bodies, usage, cost, tools, finish
reasons, faults, keys, and a grid end to end."""

from __future__ import annotations

import json
import sys

import pytest

from llm_erm.errors import UsageError
from llm_erm.proposers import (
    PermanentProposerError,
    ProposerConfig,
    ProposeRequest,
    TransientProposerError,
    make_proposer,
)
from llm_erm.proposers.base import Usage
from llm_erm.proposers.pricing import LIST_PRICES, base_model, cost_usd
from llm_erm.testing.anthropic_wire import AnthropicWireServer
from llm_erm.testing.gemini_wire import GeminiWireServer, generation_config
from llm_erm.wire.server import Fault, Reply

PROMPT = "**Problem Statement:**\nfind f\n```\n0101 -> 0\n```"
REQUEST = ProposeRequest(prompt=PROMPT, trial=1, attempt=2, seed=1234)
KINDS = ("anthropic", "gemini")
SERVERS = {"anthropic": AnthropicWireServer, "gemini": GeminiWireServer}
KEYS = {"anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
PATH = {"anthropic": "/v1/messages", "gemini": "/v1beta/models/{model}:generateContent"}
ANSWER = '{"code": "def f(x): return x.count(\'1\') % 2"}'


@pytest.fixture(autouse=True)
def no_keys(monkeypatch):
    for name in KEYS.values():
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=KINDS)
def rig(request):
    """(kind, server) for each provider; the server answers ANSWER unless told otherwise."""
    with SERVERS[request.param](lambda endpoint, body: ANSWER) as server:
        yield request.param, server


def proposer(kind, server, **settings):
    settings.setdefault("call_timeout_s", 30.0)  # a hang guard; a test of timeouts sets its own
    return make_proposer(ProposerConfig(kind=kind, base_url=server.url, **settings))


def path(kind, model):
    return PATH[kind].format(model=model)


# -- request bodies, checked on the server side -------------------------------------------------------
def test_anthropic_request_body_with_defaults_and_with_every_setting():
    with AnthropicWireServer(lambda endpoint, body: ANSWER) as server:
        proposer("anthropic", server).propose(REQUEST)
        (request,) = server.requests
        assert (request.method, request.path) == ("POST", "/v1/messages")
        assert request.body == {"model": "claude-sonnet-4-6", "max_tokens": 2048,  # the shared default gpt-5
                                "messages": [{"role": "user", "content": PROMPT}]}  # means Anthropic's default
        assert "anthropic-beta" not in request.headers
        server.reset()
        proposer("anthropic", server, model="claude-haiku-4-5", thinking_budget=2048, structured_output=True,
                 code_interpreter=True, temperature=0.7, top_p=0.9).propose(REQUEST)
        body, headers = server.requests[0].body, server.requests[0].headers
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 2048 + 2048  # the answer's room comes on top of the thinking budget
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["output_config"]["format"]["schema"]["required"] == ["code"]
    assert body["tools"] == [{"type": "code_execution_20250825", "name": "code_execution"}]
    assert headers["anthropic-beta"] == "code-execution-2025-08-25"
    assert (body["temperature"], body["top_p"]) == (0.7, 0.9)
    assert "seed" not in body  # the Messages API takes none


def test_gemini_request_body_with_defaults_and_with_every_setting():
    with GeminiWireServer(lambda endpoint, body: ANSWER) as server:
        proposer("gemini", server).propose(REQUEST)
        (request,) = server.requests
        assert (request.method, request.path) == ("POST", "/v1beta/models/gemini-2.5-pro:generateContent")
        assert request.body == {"contents": [{"parts": [{"text": PROMPT}], "role": "user"}],
                                "generationConfig": {"maxOutputTokens": 2048, "seed": 1234}}
        server.reset()
        proposer("gemini", server, model="gemini-2.5-flash", thinking_budget=512, structured_output=True,
                 temperature=0.2, top_p=0.95).propose(REQUEST)
        config = generation_config(server.requests[0].body)
        assert server.requests[0].path == "/v1beta/models/gemini-2.5-flash:generateContent"
        # the SDK sends nested fields in their proto names; Gemini's JSON parser takes those and camelCase alike
        assert config["thinkingConfig"] in ({"thinkingBudget": 512}, {"thinking_budget": 512})
        assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"]["required"] == ["code"]
        assert (config["temperature"], config["topP"], config["seed"]) == (0.2, 0.95, 1234)
        server.reset()
        proposer("gemini", server, code_interpreter=True, send_seed=False).propose(REQUEST)
        body = server.requests[0].body
    assert body["tools"] == [{"codeExecution": {}}] and "seed" not in body["generationConfig"]


def test_each_attempt_sends_its_own_seed_to_gemini():
    with GeminiWireServer(lambda endpoint, body: ANSWER) as server:
        p = proposer("gemini", server)
        for seed in (11, 12, 11):
            p.propose(ProposeRequest(PROMPT, trial=1, attempt=1, seed=seed))
        assert [generation_config(r.body)["seed"] for r in server.requests] == [11, 12, 11]


# -- what comes back ---------------------------------------------------------------------------------
def test_text_usage_cost_tools_and_finish_reason_are_parsed(rig):
    kind, server = rig
    model = {"anthropic": "claude-haiku-4-5-20251001", "gemini": "gemini-2.5-pro"}[kind]
    server.answer = lambda endpoint, body: Reply(ANSWER, prompt_tokens=1000, cached_tokens=400, completion_tokens=500,
                                                 reasoning_tokens=120, model=model,
                                                 code_interpreter_calls=(("print(1)", "1\n"), ("print(22)", "22\n")))
    proposal = proposer(kind, server, code_interpreter=True).propose(REQUEST)
    assert proposal.text == ANSWER
    u = proposal.usage
    assert (u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.reasoning_tokens) == (1000, 400, 500, 120)
    assert proposal.model == model
    price = LIST_PRICES[base_model(model)]
    assert proposal.cost_usd == pytest.approx((600 * price.input + 400 * price.cached_input + 500 * price.output) / 1e6)
    assert (proposal.tool_uses, proposal.tool_results_chars) == (2, len("1\n") + len("22\n"))
    assert proposal.finish_reason == {"anthropic": "end_turn", "gemini": "STOP"}[kind] and not proposal.truncated
    assert proposal.response_id and proposal.latency_s > 0
    assert json.loads(json.dumps(proposal.to_dict())) == proposal.to_dict()


def test_a_truncated_answer_says_so(rig):
    kind, server = rig
    server.answer = lambda endpoint, body: Reply('{"code": "def f(x):\\n    return', truncated=True)
    proposal = proposer(kind, server, max_output_tokens=64).propose(REQUEST)
    assert proposal.truncated and proposal.finish_reason == {"anthropic": "max_tokens", "gemini": "MAX_TOKENS"}[kind]


def test_identity_records_the_model_the_parameters_and_the_tools(rig):
    kind, server = rig
    plain = proposer(kind, server).identity()
    tools = proposer(kind, server, code_interpreter=True).identity()
    assert json.loads(json.dumps(plain)) == plain and plain["provider"] == kind and plain["base_url"] == server.url
    assert plain["tools"] == [] and tools["tools"] == ["code_execution"]
    assert plain["model"] == {"anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-pro"}[kind]
    assert proposer(kind, server, model="my-model").identity()["model"] == "my-model"
    assert proposer(kind, server, call_timeout_s=9).identity() == plain  # the timeout does not shape answers
    assert proposer(kind, server, max_output_tokens=77).identity() != plain


# -- faults: the right class, a message naming the cause, exactly one request ---------------------------
FAULTS = [
    (Fault.rate_limit(retry_after="2"), TransientProposerError, r"rate limited \(429\) by http://127\.0\.0\.1:\d+/\S+, "
     r"retry after 2 s"),
    (Fault.http_error(500), TransientProposerError, r"500 Internal Server Error from http://127\.0\.0\.1"),
    (Fault.http_error(503, "overloaded", retry_after="7"), TransientProposerError, r"503 Service Unavailable .*overloaded"),
    (Fault.http_error(529, "Overloaded"), TransientProposerError, r"529 Overloaded .*worth retrying"),
    (Fault.hang(5.0), TransientProposerError, r"(timed out|Timeout)"),
    (Fault.truncated(), TransientProposerError, r"(cut short|malformed)"),
    (Fault.malformed(), TransientProposerError, r"malformed response"),
    (Fault.reset(), TransientProposerError, r"(failed or was cut short|malformed)"),
    (Fault.http_error(400, "max_tokens: must be positive"), PermanentProposerError,
     r"400 Bad Request .*refused the request parameters .*max_tokens"),
    (Fault.http_error(400, "prompt is too long: 210000 tokens > 200000 maximum"), PermanentProposerError,
     r"400 Bad Request .*exceed the server's context window: lower --max-output-tokens"),
    (Fault.http_error(400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."),
     PermanentProposerError, r"exceed the server's context window"),
    (Fault.http_error(401, "invalid x-api-key"), PermanentProposerError, r"401 Unauthorized .*: check (ANTHROPIC|GEMINI)_API_KEY"),
    (Fault.http_error(403), PermanentProposerError, r"403 Forbidden .*no access to model"),
    (Fault.http_error(404, "model: nope"), PermanentProposerError, r"404 Not Found .*does not exist"),
]


@pytest.mark.parametrize("fault, error, message", FAULTS,
                         ids=[f"{f.kind}{f.status or ''}-{i}" for i, (f, _, _) in enumerate(FAULTS)])
def test_each_fault_maps_to_its_class_with_one_request(rig, fault, error, message):
    kind, server = rig
    p = proposer(kind, server, call_timeout_s=0.5)
    server.inject(fault)
    with pytest.raises(error, match=message) as caught:
        p.propose(REQUEST)
    if fault.retry_after:
        assert caught.value.retry_after_s == float(fault.retry_after)
    assert server.request_count == 1  # the SDK's own retries are off
    assert p.propose(REQUEST).text == ANSWER  # the next call is answered


def test_gemini_takes_the_wait_from_retry_info_when_there_is_no_header():
    with GeminiWireServer(lambda endpoint, body: ANSWER) as server:
        server.inject(Fault.rate_limit())  # the google.rpc body carries RetryInfo {retryDelay: "1s"}
        with pytest.raises(TransientProposerError, match="retry after 1 s .*RESOURCE_EXHAUSTED") as caught:
            proposer("gemini", server).propose(REQUEST)
    assert caught.value.retry_after_s == 1.0


# -- keys, SDKs and settings, refused before any request -------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_the_hosted_api_needs_its_own_key_before_any_request(kind, monkeypatch):
    with pytest.raises(UsageError, match=rf"{KEYS[kind]} is not set: export {KEYS[kind]}="):
        make_proposer(ProposerConfig(kind=kind)).preflight()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")  # the OpenAI key is not mistaken for theirs
    with pytest.raises(UsageError, match=f"{KEYS[kind]} is not set"):
        make_proposer(ProposerConfig(kind=kind)).preflight()
    monkeypatch.setenv(KEYS[kind], "key with space")
    with pytest.raises(UsageError, match=f"{KEYS[kind]} is malformed"):
        make_proposer(ProposerConfig(kind=kind)).preflight()
    monkeypatch.setenv(KEYS[kind], "k-123")
    make_proposer(ProposerConfig(kind=kind)).preflight()
    monkeypatch.setenv("MY_KEY", "k-456")
    assert make_proposer(ProposerConfig(kind=kind, api_key_env="MY_KEY")).key_env == "MY_KEY"


def test_a_wrong_key_is_a_401_naming_the_variable(rig, monkeypatch):
    kind, server = rig
    server.api_key = "right"
    monkeypatch.setenv(KEYS[kind], "wrong")
    with pytest.raises(PermanentProposerError, match=f"401 .*check {KEYS[kind]}"):
        proposer(kind, server).propose(REQUEST)
    monkeypatch.setenv(KEYS[kind], "right")
    assert proposer(kind, server).propose(REQUEST).text == ANSWER


@pytest.mark.parametrize("kind, module, extra", [("anthropic", "anthropic", "anthropic"),
                                                  ("gemini", "google.genai", "google-genai")])
def test_a_missing_sdk_is_a_usage_error_naming_the_extra(kind, module, extra, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if it were not installed
    p = make_proposer(ProposerConfig(kind=kind))  # making it is cheap and imports nothing
    with pytest.raises(UsageError, match=rf"pip install 'llm-erm\[{extra}\]'"):
        p.preflight()


def test_anthropic_thinking_budget_zero_is_off_and_minus_one_is_adaptive():
    from llm_erm.proposers.anthropic_api import AnthropicProposer

    def thinking(budget):
        return AnthropicProposer(ProposerConfig(kind="anthropic", thinking_budget=budget)).request_params()["thinking"]

    assert thinking(0) == {"type": "disabled"} and thinking(-1) == {"type": "adaptive"}
    assert thinking(4096) == {"type": "enabled", "budget_tokens": 4096}


def test_settings_a_provider_cannot_honour_are_refused():
    with pytest.raises(UsageError, match="below Anthropic's minimum of 1024"):
        make_proposer(ProposerConfig(kind="anthropic", base_url="http://127.0.0.1:9", thinking_budget=100)).preflight()
    with pytest.raises(UsageError, match="must exceed --thinking-budget"):
        make_proposer(ProposerConfig(kind="anthropic", base_url="http://127.0.0.1:9", thinking_budget=2000,
                                     max_output_tokens=1500)).preflight()
    with pytest.raises(UsageError, match="cannot combine JSON output with the code-execution tool"):
        make_proposer(ProposerConfig(kind="gemini", base_url="http://127.0.0.1:9", structured_output=True,
                                     code_interpreter=True)).preflight()


# -- pricing -----------------------------------------------------------------------------------------
def test_a_model_missing_from_the_table_is_unpriced_not_free(rig):
    kind, server = rig
    assert proposer(kind, server, model="claude-sonnet-4-6" if kind == "anthropic" else "gemini-9").propose(
        REQUEST).cost_usd is None


def test_their_models_are_priced_and_dated_names_price_like_their_base():
    for name, base in (("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"), ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
                       ("claude-opus-4-5-20251101", "claude-opus-4-5"), ("models/gemini-2.5-pro", "gemini-2.5-pro"),
                       ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash")):
        assert base_model(name) == base and base in LIST_PRICES
    for model in ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-pro", "gemini-2.5-flash",
                  "gemini-3-pro-preview"):
        price = LIST_PRICES[model]
        assert 0 < price.cached_input < price.input < price.output, model
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx(3.00 + 15.00)
    assert cost_usd("gemini-2.5-pro", usage) == pytest.approx(1.25 + 10.00)


def test_anthropic_cache_writes_cost_a_quarter_more_than_input():
    from llm_erm.proposers.anthropic_api import AnthropicProposer

    class U:
        input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens = 100, 1000, 0, 10
        output_tokens_details = None

    class M:
        content, usage, model, stop_reason, id, container = [], U(), "claude-haiku-4-5", "end_turn", "msg_1", None

    proposal = AnthropicProposer(ProposerConfig(kind="anthropic"))._parse(M(), 0.1)
    assert proposal.usage.prompt_tokens == 1100 and proposal.usage.cached_tokens == 0
    assert proposal.cost_usd == pytest.approx((1100 * 1.00 + 1000 * 0.25 + 10 * 5.00) / 1e6)
    assert proposal.extra["cache_write_tokens"] == 1000


# -- a grid end to end -------------------------------------------------------------------------------------
def test_a_grid_runs_through_each_provider_and_records_tools_usage_and_finish_reason(rig, tmp_path):
    from llm_erm import GridConfig, run_grid
    from llm_erm.results import ledger

    kind, server = rig
    programs = iter(["def f(x):\n    return 0", "def f(x):\n    return x.count('1') % 2"] * 4)
    server.answer = lambda endpoint, body: Reply(json.dumps({"code": next(programs)}), prompt_tokens=300,
                                                 completion_tokens=40, code_interpreter_calls=(("1+1", "2\n"),))
    result = run_grid(GridConfig(
        functions=["fn_a"], lengths=[12], attempts=3, trials=1, test_size=200, analyze=False, run_id="p",
        proposer={"kind": kind, "base_url": server.url, "code_interpreter": True, "call_timeout_s": 10,
                  "model": {"anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash"}[kind]},
        results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"), verify_workers=1,
    ))
    assert result.ok, result.failure_message()
    rows = sorted(ledger.read_attempts(tmp_path / "results" / "p").to_pylist(), key=lambda r: r["attempt"])
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[1]["stopped_early"] and rows[1]["test_acc"] == 1.0
    # the tools enabled have their column; request_params holds the request's own parameters, not the identity
    assert all(r["tools"] == "code_execution" and not {"provider", "model"} & set(json.loads(r["request_params"]))
               for r in rows)
    assert all(r["proposer"] == kind and r["prompt_tokens"] == 300 and r["completion_tokens"] == 40 for r in rows)
    assert all(r["finish_reason"] in ("end_turn", "STOP") and r["tool_uses"] == 1 for r in rows)
    assert all(r["cost_usd"] is not None and r["cost_usd"] > 0 for r in rows)
    assert server.request_count == 2

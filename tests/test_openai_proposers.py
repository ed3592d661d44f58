"""The OpenAI proposers, through the real `openai` client, against a real HTTP server on 127.0.0.1."""

import json
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from llm_erm.errors import UsageError
from llm_erm.proposers import (
    PermanentProposerError,
    ProposerConfig,
    ProposeRequest,
    TransientProposerError,
    make_proposer,
)
from llm_erm.proposers.openai_api import ChatProposer, ResponsesProposer, retry_after_seconds
from llm_erm.wire.server import Fault, Reply, WireServer

KEY = "sk-test-0123456789"
PROMPT = "**Problem Statement:**\nfind f\n```\n0101 -> 0\n```"
REQUEST = ProposeRequest(prompt=PROMPT, trial=1, attempt=2)
KINDS = ("openai-responses", "openai-chat")
ENDPOINT = {"openai-responses": "/v1/responses", "openai-chat": "/v1/chat/completions"}


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def proposer(server, kind="openai-responses", **settings):
    settings.setdefault("call_timeout_s", 30.0)  # a hang guard; a test of timeouts sets its own
    return make_proposer(ProposerConfig(kind=kind, base_url=server.url, **settings))


# -- request bodies, checked on the server side ----------------------------------------------------
def test_responses_request_body_with_defaults(wire_server):
    proposer(wire_server).propose(REQUEST)
    (request,) = wire_server.requests
    assert (request.method, request.path) == ("POST", "/v1/responses")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {
        "model": "gpt-5",
        "input": [{"role": "user", "content": PROMPT}],
        "reasoning": {"effort": "high"},
        "text": {"verbosity": "low"},
        "max_output_tokens": 2048,  # a server that is not OpenAI's gets a cap that suits a local model
        "tool_choice": "auto",
    }


def test_responses_request_body_with_settings_and_code_interpreter(wire_server):
    proposer(
        wire_server, model="gpt-5-mini", reasoning_effort="minimal", verbosity="high", max_output_tokens=1234,
        tool_choice="required", code_interpreter=True,
    ).propose(REQUEST)
    body = wire_server.requests[0].body
    assert body["model"] == "gpt-5-mini"
    assert body["reasoning"] == {"effort": "minimal"}
    assert body["text"] == {"verbosity": "high"}
    assert body["max_output_tokens"] == 1234
    assert body["tool_choice"] == "required"
    assert body["tools"] == [{"type": "code_interpreter", "container": {"type": "auto"}}]
    assert body["include"] == ["code_interpreter_call.outputs"]


def test_structured_output_asks_each_api_for_the_code_schema(wire_server):
    proposer(wire_server, structured_output=True).propose(REQUEST)
    text = wire_server.requests[0].body["text"]
    assert text["verbosity"] == "low" and text["format"]["type"] == "json_schema"
    assert text["format"]["schema"]["required"] == ["code"] and text["format"]["strict"] is True
    proposer(wire_server, "openai-chat", structured_output=True).propose(REQUEST)
    chat = wire_server.requests[1].body["response_format"]
    assert chat["type"] == "json_schema" and chat["json_schema"]["schema"] == text["format"]["schema"]


def test_responses_request_omits_reasoning_and_verbosity_for_a_non_reasoning_model(wire_server):
    proposer(wire_server, model="gpt-4.1").propose(REQUEST)
    body = wire_server.requests[0].body
    assert "reasoning" not in body and "text" not in body and "tools" not in body
    assert body["max_output_tokens"] == 2048


def test_chat_request_body_for_a_reasoning_model(wire_server):
    proposer(wire_server, "openai-chat", chat_max_tokens_param="max_completion_tokens").propose(REQUEST)
    (request,) = wire_server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body == {
        "model": "gpt-5",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": 2048,
        "reasoning_effort": "high",
    }


def test_chat_request_body_for_a_local_non_reasoning_model(wire_server):
    proposer(wire_server, "openai-chat", model="Qwen/Qwen2.5-Coder-7B-Instruct", max_output_tokens=4096).propose(
        REQUEST
    )
    assert wire_server.requests[0].body == {
        "model": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 4096,
    }


def test_chat_output_limit_name_defaults_by_host_and_model():
    def param(**settings):
        return ChatProposer(ProposerConfig(kind="openai-chat", **settings)).max_tokens_param()

    assert param(model="gpt-5") == "max_completion_tokens"  # OpenAI-hosted reasoning model
    assert param(model="o4-mini-2025-04-16") == "max_completion_tokens"
    assert param(model="gpt-4o") == "max_tokens"
    assert param(model="gpt-oss-20b", base_url="http://127.0.0.1:8000/v1") == "max_tokens"  # vLLM/Ollama
    assert param(model="gpt-4o", chat_max_tokens_param="max_completion_tokens") == "max_completion_tokens"
    params = ChatProposer(ProposerConfig(kind="openai-chat", model="gpt-5-chat-latest")).request_params()
    assert "reasoning_effort" not in params


# -- parsing text and usage -------------------------------------------------------------------------
def test_responses_text_usage_tools_model_and_cost_are_parsed(wire_server):
    wire_server.answer = lambda endpoint, body: Reply(
        '{"code": "def f(x): return x.count(\'1\') % 2"}', prompt_tokens=1000, cached_tokens=400,
        completion_tokens=500, reasoning_tokens=320, model="gpt-5-2025-08-07",
        code_interpreter_calls=(("print(1)", "1\n"), ("print('ab')", "ab\n")),
    )
    proposal = proposer(wire_server, code_interpreter=True).propose(REQUEST)
    assert proposal.text == '{"code": "def f(x): return x.count(\'1\') % 2"}'
    usage = proposal.usage
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens, usage.reasoning_tokens) == (
        1000, 400, 500, 320,
    )
    assert proposal.model == "gpt-5-2025-08-07"
    assert proposal.cost_usd == pytest.approx((600 * 1.25 + 400 * 0.125 + 500 * 10.00) / 1e6)
    assert (proposal.tool_uses, proposal.tool_results_chars) == (2, len("1\n") + len("ab\n"))
    assert proposal.latency_s > 0
    assert proposal.response_id.startswith("resp_") and proposal.finish_reason == "completed"
    assert not proposal.truncated
    assert json.loads(json.dumps(proposal.to_dict())) == proposal.to_dict()


def test_chat_text_usage_and_cost_are_parsed(wire_server):
    wire_server.answer = lambda endpoint, body: Reply(
        "```python\ndef f(x):\n    return 1\n```", prompt_tokens=2000, cached_tokens=1024,
        completion_tokens=300, reasoning_tokens=100, model="gpt-4o-mini-2024-07-18",
    )
    proposal = proposer(wire_server, "openai-chat", model="gpt-4o-mini").propose(REQUEST)
    assert proposal.text == "```python\ndef f(x):\n    return 1\n```"
    assert proposal.usage.prompt_tokens == 2000 and proposal.usage.cached_tokens == 1024
    assert proposal.usage.completion_tokens == 300 and proposal.usage.reasoning_tokens == 100
    assert proposal.model == "gpt-4o-mini-2024-07-18"
    assert proposal.cost_usd == pytest.approx((976 * 0.15 + 1024 * 0.075 + 300 * 0.60) / 1e6)
    assert proposal.finish_reason == "stop" and not proposal.truncated and proposal.response_id


def test_a_model_renamed_by_a_local_server_is_unpriced(wire_server):
    wire_server.answer = lambda endpoint, body: Reply("x", model="local-llama")
    proposal = proposer(wire_server, "openai-chat", model="local-llama").propose(REQUEST)
    assert proposal.cost_usd is None and proposal.model == "local-llama"


# -- faults: the right class, a message naming the cause, exactly one HTTP request -----------------
FAULTS = [
    (Fault.rate_limit(retry_after="2"), TransientProposerError, r"rate limited \(429\) by http://127\.0\.0\.1:\d+/v1/"
     r"\S+, retry after 2 s"),
    (Fault.rate_limit(), TransientProposerError, r"rate limited \(429\) .* no Retry-After given"),
    (Fault.http_error(500), TransientProposerError, r"500 Internal Server Error from http://127\.0\.0\.1"),
    (Fault.http_error(503, "overloaded"), TransientProposerError, r"503 Service Unavailable .*overloaded"),
    (Fault.http_error(502), TransientProposerError, r"502 Bad Gateway"),
    (Fault.http_error(408), TransientProposerError, r"408 Request Timeout"),
    (Fault.http_error(409), TransientProposerError, r"409 Conflict"),
    (Fault.hang(5.0), TransientProposerError, r"timed out after 0\.5 s waiting for http://127\.0\.0\.1"),
    (Fault.truncated(), TransientProposerError, r"cut short .*complete message body"),
    (Fault.malformed(), TransientProposerError, r"malformed response body from http://127\.0\.0\.1"),
    (Fault.reset(), TransientProposerError, r"failed or was cut short .*disconnected"),
    (Fault.http_error(400, "Unsupported parameter: 'reasoning.effort'"), PermanentProposerError,
     r"400 Bad Request .*refused the request parameters .*reasoning\.effort"),
    (Fault.http_error(401, "Incorrect API key provided"), PermanentProposerError,
     r"401 Unauthorized from http://127\.0\.0\.1:\d+/v1/\S+: check OPENAI_API_KEY"),
    (Fault.http_error(403), PermanentProposerError, r"403 Forbidden .*no access to model 'gpt-5'"),
    (Fault.http_error(404, "The model `gpt-5` does not exist"), PermanentProposerError,
     r"404 Not Found .*model 'gpt-5' .*does not exist"),
    (Fault.http_error(422), PermanentProposerError, r"422 Unprocessable Entity"),
]


@pytest.fixture(scope="module")
def fault_rig():
    """One server and one proposer per kind for all fault cases (building an openai client costs ~0.1 s)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", KEY)
        with WireServer() as server:
            yield server, {kind: proposer(server, kind, call_timeout_s=0.5) for kind in KINDS}


def _fault_id(value):
    if isinstance(value, Fault):
        return f"{value.kind}{value.status or ''}{'-retry-after' if value.retry_after else ''}"
    if isinstance(value, type):
        return "transient" if value is TransientProposerError else "permanent"
    return "msg"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fault, error, message", FAULTS, ids=_fault_id)
def test_each_fault_maps_to_its_class_with_one_request(fault_rig, kind, fault, error, message):
    server, proposers = fault_rig
    server.reset()
    server.inject(fault)
    with pytest.raises(error, match=message) as caught:
        proposers[kind].propose(REQUEST)
    assert not isinstance(caught.value, TransientProposerError if error is PermanentProposerError else
                          PermanentProposerError)
    assert server.request_count == 1  # the client's own retries are off
    assert server.requests[0].path == ENDPOINT[kind]
    assert proposers[kind].propose(REQUEST).text  # one fault, one request: the next call is answered


def test_retry_after_is_passed_on_in_seconds(wire_server):
    p = proposer(wire_server)
    for header, expected in (("2", 2.0), ("0.5", 0.5), (None, None)):
        wire_server.inject(Fault.rate_limit(retry_after=header))
        with pytest.raises(TransientProposerError) as caught:
            p.propose(REQUEST)
        assert caught.value.retry_after_s == expected
    wire_server.inject(Fault.http_error(503, retry_after="7"))
    with pytest.raises(TransientProposerError) as caught:
        p.propose(REQUEST)
    assert caught.value.retry_after_s == 7.0
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    wire_server.inject(Fault.rate_limit(retry_after=date))
    with pytest.raises(TransientProposerError) as caught:
        p.propose(REQUEST)
    assert 80 <= caught.value.retry_after_s <= 91


def test_retry_after_parsing():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, now) == 30.0
    assert retry_after_seconds({"retry-after": "Wed, 01 Jan 2025 11:00:00 GMT"}, now) == 0.0
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}, now) == 1.5
    assert retry_after_seconds({"retry-after": "soon"}, now) is None
    assert retry_after_seconds({}, now) is None


def test_a_proposer_recovers_after_transient_faults(wire_server):
    p = proposer(wire_server, "openai-chat")
    wire_server.inject(Fault.rate_limit("1"), Fault.http_error(500))
    for _ in range(2):
        with pytest.raises(TransientProposerError):
            p.propose(REQUEST)
    assert p.propose(REQUEST).text.startswith('{"code"')
    assert wire_server.request_count == 3


def test_the_server_rejects_a_wrong_key_with_401(wire_server, monkeypatch):
    wire_server.api_key = "sk-right"
    monkeypatch.setenv("MY_KEY", "sk-wrong")
    with pytest.raises(PermanentProposerError, match="401 Unauthorized .*check MY_KEY .*Incorrect API key"):
        proposer(wire_server, api_key_env="MY_KEY").propose(REQUEST)
    monkeypatch.setenv("MY_KEY", "sk-right")
    assert proposer(wire_server, api_key_env="MY_KEY").propose(REQUEST).text


# -- the key: checked before any request -----------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_missing_key_is_a_usage_error_before_any_request(wire_server, monkeypatch, kind):
    monkeypatch.delenv("OPENAI_API_KEY")
    p = make_proposer(ProposerConfig(kind=kind, call_timeout_s=1.0))  # OpenAI's own API: a key is required
    with pytest.raises(UsageError, match="OPENAI_API_KEY is not set: export OPENAI_API_KEY="):
        p.preflight()
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    with pytest.raises(UsageError, match="OPENAI_API_KEY is empty"):
        p.preflight()
    assert wire_server.request_count == 0


@pytest.mark.parametrize("value", ["Bearer sk-abc", "sk-abc\n", " sk-abc", "sk-ab c", "sk-ab\x07c", "sk-é"])
def test_malformed_key_is_a_usage_error(wire_server, monkeypatch, value):
    monkeypatch.setenv("OPENAI_API_KEY", value)
    p = proposer(wire_server)
    with pytest.raises(UsageError, match="OPENAI_API_KEY is malformed"):
        p.preflight()
    with pytest.raises(PermanentProposerError, match="OPENAI_API_KEY is malformed"):
        p.propose(REQUEST)
    assert wire_server.request_count == 0


def test_a_local_server_needs_no_key(wire_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    p = proposer(wire_server, "openai-chat", model="llama3")
    p.preflight()
    assert p.propose(REQUEST).text
    assert wire_server.requests[0].headers["authorization"] == "Bearer no-key"


def test_the_key_name_is_configurable(wire_server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_KEY", "az-123")
    make_proposer(ProposerConfig(kind="openai-responses", api_key_env="AZURE_KEY")).preflight()
    with pytest.raises(UsageError, match="GATEWAY_KEY is not set"):
        make_proposer(ProposerConfig(kind="openai-chat", api_key_env="GATEWAY_KEY")).preflight()


# -- config, identity, factory -----------------------------------------------------------------------
def test_identity_is_json_and_follows_the_request_parameters(wire_server):
    a = proposer(wire_server).identity()
    assert json.loads(json.dumps(a)) == a
    assert a == {
        "provider": "openai-responses",
        "base_url": wire_server.url,
        "model": "gpt-5",
        "params": {"max_output_tokens": 2048, "tool_choice": "auto", "reasoning": {"effort": "high"},
                   "text": {"verbosity": "low"}},
        "tools": [],  # every row records whether the model could run code
    }
    assert proposer(wire_server, code_interpreter=True).identity()["tools"] == ["code_interpreter"]
    assert proposer(wire_server, reasoning_effort="low").identity() != a
    assert proposer(wire_server, call_timeout_s=5.0).identity() == a  # the timeout does not shape the answer
    default = make_proposer(ProposerConfig(kind="openai-chat")).identity()
    assert default["base_url"] == "https://api.openai.com/v1" and default["provider"] == "openai-chat"


def test_factory_and_config_checks():
    assert isinstance(make_proposer(ProposerConfig(kind="openai-responses")), ResponsesProposer)
    assert isinstance(make_proposer(ProposerConfig(kind="openai-chat")), ChatProposer)
    assert ProposerConfig().kind is None and ProposerConfig().resolved_kind() in ("enumerate", "openai-responses")
    assert ProposerConfig(api_key_env="LLM_ERM_NO_SUCH_KEY").resolved_kind() == "enumerate"
    # On OpenAI's own API the output cap defaults to GPT-5's 20 000; an explicit cap always wins.
    assert ResponsesProposer(ProposerConfig(kind="openai-responses")).request_params()["max_output_tokens"] == 20000
    assert ChatProposer(ProposerConfig(kind="openai-chat", base_url="http://127.0.0.1:1/v1", max_output_tokens=99)
                        ).request_params()["max_tokens"] == 99
    with pytest.raises(UsageError, match="the replay proposer needs a source: pass --replay-from"):
        make_proposer(ProposerConfig(kind="replay"))
    with pytest.raises(UsageError, match="code interpreter needs the Responses API"):
        make_proposer(ProposerConfig(kind="openai-chat", code_interpreter=True)).preflight()
    with pytest.raises(UsageError, match=r"proposer setting reasoning_effort='extreme' is invalid"):
        ProposerConfig.from_options(kind="openai-responses", reasoning_effort="extreme")
    with pytest.raises(UsageError, match=r"proposer setting max_output_tokens=0 is invalid"):
        ProposerConfig.from_options(max_output_tokens=0)
    with pytest.raises(UsageError, match=r"proposer setting temperature=.* is invalid"):
        ProposerConfig.from_options(temperature=-0.2)
    cfg = ProposerConfig.from_options(kind="openai-chat", model="llama3", base_url="http://127.0.0.1:11434/v1")
    assert (cfg.kind, cfg.model, cfg.max_output_tokens, cfg.call_timeout_s) == ("openai-chat", "llama3", None, 1200.0)


# -- the test server itself ---------------------------------------------------------------------------
def test_the_server_serves_concurrent_requests_and_counts_them_all(wire_server):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def answer(endpoint, body):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        threading.Event().wait(0.2)
        with lock:
            in_flight[0] -= 1
        return Reply(body["messages"][0]["content"])

    wire_server.answer = answer
    p = proposer(wire_server, "openai-chat", call_timeout_s=5.0)
    results = {}

    def call(i):
        results[i] = p.propose(ProposeRequest(f"prompt {i}", 1, i)).text

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"prompt {i}" for i in range(12)}
    assert wire_server.request_count == 12
    assert sorted(r.body["messages"][0]["content"] for r in wire_server.requests) == sorted(results.values())
    assert peak[0] > 1


def test_random_faults_are_seeded_and_reproducible():
    def statuses(seed):
        with WireServer(transient_rate=0.5, seed=seed) as server:
            p = make_proposer(ProposerConfig(kind="openai-chat", base_url=server.url, call_timeout_s=30.0))
            seen = []
            for _ in range(12):
                try:
                    p.propose(REQUEST)
                    seen.append("ok")
                except TransientProposerError as exc:  # "rate limited (429) by ..." / "503 Service ... from ..."
                    seen.append(str(exc).split(" by ")[0].split(" from ")[0])
            return seen

    first = statuses(7)
    assert first == statuses(7)
    assert "ok" in first and set(first) - {"ok"}
    assert set(first) <= {"ok", "rate limited (429)", "500 Internal Server Error", "503 Service Unavailable"}


def test_models_endpoint_and_unknown_routes(wire_server):
    import openai

    client = openai.OpenAI(base_url=wire_server.url, api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == ["gpt-5"]
    with pytest.raises(openai.NotFoundError):
        client.post("/embeddings", body={"input": "x"}, cast_to=object)


def test_delay_and_server_latency_slow_the_answer_but_do_not_fail_it(wire_server):
    p = proposer(wire_server, "openai-chat", call_timeout_s=5.0)
    wire_server.inject(Fault.delay(0.3))
    assert p.propose(REQUEST).latency_s >= 0.3
    wire_server.latency_s = 0.2
    assert p.propose(REQUEST).latency_s >= 0.2
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        Fault("explode")


def test_a_third_party_proposer_registers_through_an_entry_point(tmp_path):
    from llm_erm.proposers import registry

    package = tmp_path / "my_provider.py"
    package.write_text(
        "from llm_erm.proposers.base import Proposal, Usage\n"
        "class EchoProposer:\n"
        "    kind = 'echo'\n"
        "    def __init__(self, cfg): self.cfg = cfg\n"
        "    def preflight(self): pass\n"
        "    def identity(self): return {'provider': 'echo', 'params': self.cfg.options}\n"
        "    def propose(self, request):\n"
        "        return Proposal(text=request.prompt[::-1], usage=Usage(), latency_s=0.0, model='echo', cost_usd=0.0)\n")
    info = tmp_path / "my_provider-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-provider\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[llm_erm.proposers]\necho = my_provider:EchoProposer\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    registry.registered.cache_clear()
    try:
        assert "echo" in registry.proposer_kinds()
        proposer = make_proposer(ProposerConfig(kind="echo", options={"x": 1}))
        assert proposer.propose(ProposeRequest("abc", 1, 1)).text == "cba" and proposer.identity()["params"] == {"x": 1}
    finally:
        sys.path.remove(str(tmp_path))
        registry.registered.cache_clear()
    with pytest.raises(UsageError, match="unknown proposer 'echo'"):
        make_proposer(ProposerConfig(kind="echo"))

"""Replay: exactly what was recorded, keyed by the request; the replay-server over the real openai client."""

import json
import subprocess
import sys

import openai
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from waiting import scaled

from llm_erm.errors import UsageError
from llm_erm.proposers import PermanentProposerError, ProposerConfig, ProposeRequest, Usage, make_proposer
from llm_erm.proposers.replay import ReplayAnswers, ReplayProposer, load_records, sha256_text
from llm_erm.results.ledger import write_table, write_trial
from llm_erm.wire.server import WireServer

PROMPT_A = "**Problem Statement:**\nprompt A\n```\n0101 -> 0\n```"
PROMPT_B = "**Problem Statement:**\nprompt B\n```\n1111 -> 1\n```"


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def request(prompt, trial=1, attempt=1):
    return ProposeRequest(prompt=prompt, trial=trial, attempt=attempt)


# -- the replay proposer ----------------------------------------------------------------------------
def test_jsonl_replay_returns_exactly_what_was_recorded(tmp_path):
    source = write_jsonl(tmp_path / "run.jsonl", [
        {"prompt": PROMPT_A, "trial": 1, "attempt": 1, "text": "first answer", "model": "gpt-5-2025-08-07",
         "usage": {"prompt_tokens": 900, "completion_tokens": 4000, "reasoning_tokens": 3500, "cached_tokens": 512},
         "cost_usd": 0.0412, "latency_s": 37.5, "tool_uses": 2, "tool_results_chars": 120},
        {"prompt": PROMPT_A, "trial": 1, "attempt": 2, "text": "second answer", "cost_usd": None},
        {"prompt": PROMPT_A, "trial": 2, "attempt": 1, "text": "trial two"},
    ])
    proposer = make_proposer(ProposerConfig(kind="replay", replay_from=source))
    proposer.preflight()
    first = proposer.propose(request(PROMPT_A, 1, 1))
    assert first.text == "first answer"
    assert first.usage == Usage(prompt_tokens=900, completion_tokens=4000, reasoning_tokens=3500, cached_tokens=512)
    assert first.cost_usd == 0.0412 and first.model == "gpt-5-2025-08-07"
    assert (first.tool_uses, first.tool_results_chars) == (2, 120)
    assert first.latency_s < 0.1 and first.extra["recorded_latency_s"] == 37.5
    second = proposer.propose(request(PROMPT_A, 1, 2))
    assert second.text == "second answer" and second.cost_usd is None and second.usage == Usage()
    assert proposer.propose(request(PROMPT_A, 2, 1)).text == "trial two"
    # the identity is the recording's content: a copy elsewhere is the same proposer, an edited one is not
    copy = tmp_path / "elsewhere" / "copy.jsonl"
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    assert proposer.identity() == make_proposer(ProposerConfig(kind="replay", replay_from=copy)).identity()
    assert set(proposer.identity()) == {"provider", "source_sha256"}
    copy.write_text(source.read_text().replace("trial two", "trial 2"))
    assert proposer.identity() != make_proposer(ProposerConfig(kind="replay", replay_from=copy)).identity()


def test_an_unrecorded_request_is_refused_naming_it_and_the_source(tmp_path):
    source = write_jsonl(tmp_path / "run.jsonl", [{"prompt": PROMPT_A, "trial": 1, "attempt": 1, "text": "a"}])
    proposer = ReplayProposer(source)
    for missing in (request(PROMPT_A, 1, 2), request(PROMPT_A, 2, 1), request(PROMPT_B, 1, 1)):
        with pytest.raises(PermanentProposerError) as caught:
            proposer.propose(missing)
        message = str(caught.value)
        assert f"no recorded answer for trial {missing.trial} attempt {missing.attempt}" in message
        assert sha256_text(missing.prompt)[:12] in message and str(source) in message


def test_the_papers_jsonl_export_replays_by_prompt_and_attempt(tmp_path):
    # The original export has no trial column; its usage is flat and its latency in milliseconds.
    source = write_jsonl(tmp_path / "results_attempts.jsonl", [
        {"fn": "fn_a", "length": 20, "attempt": 1, "prompt": PROMPT_A, "text": "paper a1", "duration_ms": 51234,
         "prompt_tokens": 1000, "completion_tokens": 2000, "reasoning_tokens": 1500, "cached_tokens": 0,
         "tool_uses": 0, "tool_results_chars": 0, "val_acc": 0.5, "test_acc": 0.5, "compile_error": None},
        {"fn": "fn_a", "length": 20, "attempt": 2, "prompt": PROMPT_A, "text": "paper a2", "model": "gpt-5",
         "prompt_tokens": 1000, "completion_tokens": 2000, "reasoning_tokens": 0, "cached_tokens": 1000},
    ])
    proposer = ReplayProposer(source)
    first = proposer.propose(request(PROMPT_A, trial=3, attempt=1))  # any trial: the source has none
    assert first.text == "paper a1" and first.extra["recorded_latency_s"] == 51.234
    assert first.usage == Usage(1000, 2000, 1500, 0)
    assert first.cost_usd is None  # no cost and no model recorded: unpriced, not free
    second = proposer.propose(request(PROMPT_A, trial=0, attempt=2))
    assert second.cost_usd == pytest.approx((1000 * 0.125 + 2000 * 10.0) / 1e6)  # priced from the recorded model


def test_records_without_attempt_are_numbered_in_order_and_hashes_are_enough(tmp_path):
    source = write_jsonl(tmp_path / "run.jsonl", [
        {"prompt_sha256": sha256_text(PROMPT_A), "text": "one"},
        {"prompt_sha256": sha256_text(PROMPT_B), "text": "other prompt"},
        {"prompt_sha256": sha256_text(PROMPT_A), "text": "two"},
        {"summary": True, "mean_test_acc": 0.9},  # not an answer: no text
    ])
    proposer = ReplayProposer(source)
    assert [proposer.propose(request(PROMPT_A, 1, a)).text for a in (1, 2)] == ["one", "two"]
    assert proposer.propose(request(PROMPT_B, 1, 1)).text == "other prompt"


def ledger_row(prompt, trial, attempt, text, **extra):
    row = {
        "run_id": "r1", "target": "fn_a", "target_name": "parity_all", "length": 20, "trial": trial,
        "attempt": attempt, "proposer": "openai-responses", "model": "gpt-5", "prompt": prompt,
        "prompt_sha256": sha256_text(prompt), "response_model": "gpt-5-2025-08-07", "text": text,
        "prompt_tokens": 700, "completion_tokens": 1500, "reasoning_tokens": 1200, "cached_tokens": 256,
        "tool_uses": 0, "tool_results_chars": 0, "cost_usd": 0.0159, "latency_s": 12.0, "status": "ok",
    }
    return {**row, **extra}


def test_a_runs_ledger_replays_exactly(tmp_path):
    run = tmp_path / "results" / "r1"
    write_trial(run, "erm", "fn_a", 20, 1, [ledger_row(PROMPT_A, 1, 1, "t1a1"), ledger_row(PROMPT_A, 1, 2, "t1a2")])
    write_trial(run, "erm", "fn_a", 20, 2, [
        ledger_row(PROMPT_A, 2, 1, None, status="propose_error", propose_error="429 x5", cost_usd=None),
    ])
    write_trial(run, "erm", "fn_c", 50, 1, [ledger_row(PROMPT_B, 1, 1, "c50", cost_usd=None, response_model="mystery")])
    # A table without answers beside them (the run summary) is ignored.
    write_table(run / "summary.parquet", pa.table({"target": ["fn_a"], "mean_test_acc": [1.0]}))

    proposer = make_proposer(ProposerConfig(kind="replay", replay_from=run))
    proposer.preflight()
    answer = proposer.propose(request(PROMPT_A, 1, 2))
    assert answer.text == "t1a2" and answer.model == "gpt-5-2025-08-07"
    assert answer.usage == Usage(700, 1500, 1200, 256) and answer.cost_usd == 0.0159
    other = proposer.propose(request(PROMPT_B, 1, 1))
    assert other.text == "c50" and other.cost_usd is None  # recorded as unpriced, stays unpriced
    with pytest.raises(PermanentProposerError, match="no recorded answer for trial 2 attempt 1"):
        proposer.propose(request(PROMPT_A, 2, 1))  # that call failed when recorded: nothing to replay


def test_a_single_parquet_file_is_a_source_too(tmp_path):
    path = tmp_path / "answers.parquet"
    pq.write_table(pa.table({"prompt": [PROMPT_B], "attempt": [4], "text": ["from parquet"]}), path)
    assert ReplayProposer(path).propose(request(PROMPT_B, 9, 4)).text == "from parquet"


def test_unusable_sources_are_usage_errors_at_preflight(tmp_path):
    with pytest.raises(UsageError, match="replay source .*nope.jsonl does not exist"):
        ReplayProposer(tmp_path / "nope.jsonl").preflight()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "text": "t"}\n{"prompt": oops}\n', encoding="utf-8")
    with pytest.raises(UsageError, match="bad.jsonl line 2 is not JSON"):
        ReplayProposer(bad).preflight()
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"summary": 1}])
    with pytest.raises(UsageError, match="holds no recorded answers"):
        ReplayProposer(empty).preflight()
    no_prompt = write_jsonl(tmp_path / "no_prompt.jsonl", [{"text": "t"}])
    with pytest.raises(UsageError, match="no_prompt.jsonl line 1 has a text but neither prompt nor prompt_sha256"):
        ReplayProposer(no_prompt).preflight()
    twice = write_jsonl(tmp_path / "twice.jsonl", [
        {"prompt": "p", "trial": 1, "attempt": 1, "text": "x"}, {"prompt": "p", "trial": 1, "attempt": 1, "text": "y"},
    ])
    with pytest.raises(UsageError, match="records two answers for one request .*trial 1, attempt 1"):
        ReplayProposer(twice).preflight()
    (tmp_path / "no_answers").mkdir()
    with pytest.raises(UsageError, match="no Parquet file with recorded answers under"):
        ReplayProposer(tmp_path / "no_answers").preflight()


def test_a_broken_source_fails_propose_permanently_not_with_a_crash(tmp_path):
    with pytest.raises(PermanentProposerError, match="does not exist"):
        ReplayProposer(tmp_path / "gone.jsonl").propose(request(PROMPT_A))


def test_load_records_keeps_source_order(tmp_path):
    source = write_jsonl(tmp_path / "r.jsonl", [{"prompt": p, "text": p[-5:]} for p in (PROMPT_B, PROMPT_A)])
    assert [r.prompt_sha256 for r in load_records(source)] == [sha256_text(PROMPT_B), sha256_text(PROMPT_A)]


# -- the replay-server: any client, by prompt ------------------------------------------------------
def test_replay_server_answers_the_real_openai_client_in_attempt_order(tmp_path):
    source = write_jsonl(tmp_path / "run.jsonl", [
        {"prompt": PROMPT_A, "trial": 1, "attempt": 2, "text": "A2", "usage": {"prompt_tokens": 10,
         "completion_tokens": 20, "reasoning_tokens": 5, "cached_tokens": 3}, "model": "gpt-5-2025-08-07"},
        {"prompt": PROMPT_A, "trial": 1, "attempt": 1, "text": "A1"},
        {"prompt": PROMPT_B, "trial": 1, "attempt": 1, "text": "B1"},
    ])
    with WireServer(ReplayAnswers(load_records(source), str(source))) as server:
        client = openai.OpenAI(base_url=server.url, api_key="replay", max_retries=0, timeout=5)
        first = client.responses.create(model="gpt-5", input=[{"role": "user", "content": PROMPT_A}])
        assert first.output_text == "A1"
        second = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": PROMPT_A}])
        assert second.choices[0].message.content == "A2" and second.model == "gpt-5-2025-08-07"
        assert (second.usage.prompt_tokens, second.usage.completion_tokens) == (10, 20)
        assert second.usage.prompt_tokens_details.cached_tokens == 3
        assert second.usage.completion_tokens_details.reasoning_tokens == 5
        assert client.responses.create(model="gpt-5", input=PROMPT_B).output_text == "B1"  # plain-string input
        with pytest.raises(openai.NotFoundError) as caught:
            client.responses.create(model="gpt-5", input=[{"role": "user", "content": PROMPT_A}])
        assert "no recorded answer for this prompt" in str(caught.value)
        assert "request 3 for it, 2 recorded" in str(caught.value) and "run.jsonl" in str(caught.value)


def test_replay_server_through_our_own_proposer_round_trips_the_usage(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-replay")
    source = write_jsonl(tmp_path / "run.jsonl", [
        {"prompt": PROMPT_A, "attempt": 1, "text": "A1", "prompt_tokens": 800, "completion_tokens": 90,
         "reasoning_tokens": 40, "cached_tokens": 128, "model": "gpt-5"},
    ])
    with WireServer(ReplayAnswers(load_records(source))) as server:
        cfg = ProposerConfig(kind="openai-responses", base_url=server.url, call_timeout_s=5)
        proposal = make_proposer(cfg).propose(request(PROMPT_A))
    assert proposal.text == "A1" and proposal.usage == Usage(800, 90, 40, 128)


def _cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", "from llm_erm.cli import main; main()", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


def test_cli_refuses_a_missing_source_with_exit_2(tmp_path):
    process = _cli("replay-server", "--from", str(tmp_path / "missing.jsonl"))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip() == f"error: replay source {tmp_path / 'missing.jsonl'} does not exist: pass a " \
                          "results/<run_id> directory or a JSONL file"
    assert out == ""


def test_cli_replay_server_serves_until_stopped(tmp_path):
    source = write_jsonl(tmp_path / "run.jsonl", [{"prompt": PROMPT_A, "attempt": 1, "text": "served"}])
    process = _cli("replay-server", "--from", str(source), "--port", "0")
    try:
        banner = process.stdout.readline()
        assert banner.startswith(f"replaying 1 recorded answers for 1 prompts from {source} at http://127.0.0.1:")
        url = banner.split(" at ")[1].split()[0]
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=10)
        assert [m.id for m in client.models.list()] == ["gpt-5"]
        reply = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": PROMPT_A}])
        assert reply.choices[0].message.content == "served"
    finally:
        process.terminate()
        process.communicate(timeout=scaled(30))

"""A real model in the test suite: llama.cpp's own server with the bundled Qwen2.5-Coder-0.5B (the local-llm
extra), started once per session on 127.0.0.1 (the `local_llm` fixture in conftest.py); the weights'
assembly and checks; the `llm-erm local-model` command; and what real local servers need of our proposers
(sampling settings, per-attempt seeds, structured output, context overflow)."""

from __future__ import annotations

import hashlib
import importlib
import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from llm_erm.errors import UsageError
from llm_erm.local_model import GGUF_MAGIC, MODEL, MODELS_DIR_ENV, BundledModel, model_path
from llm_erm.proposers import PermanentProposerError, ProposerConfig, ProposeRequest, make_proposer
from llm_erm.results.prompts import with_prompts

REPO = Path(__file__).resolve().parents[1]
# What a grid may record for an answer of a real 0.5B model: anything but a failed call.
ANSWER_STATUSES = {"ok", "no_code", "syntax_error", "no_function", "runtime_errors", "timeout", "memory", "crashed"}


# -- the weights: found without importing their packages, assembled once, checked ------------------------
def fake_model(tmp_path: Path, monkeypatch, data: bytes, parts: int = 3, prefix: str = "fakechunks") -> BundledModel:
    """Chunk packages like the real ones (a package dir holding data/partNN.bin) whose __init__ must never run."""
    site = tmp_path / "site"
    size = -(-len(data) // parts)
    packages = []
    for i in range(parts):
        package = site / f"{prefix}_part{i + 1}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('a chunk package must not be imported')\n")
        (package / "data" / f"part{i + 1:02d}.bin").write_bytes(data[i * size:(i + 1) * size])
        packages.append(package.name)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    return BundledModel(file_name="fake.gguf", alias="fake", packages=tuple(packages), size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(), description="a fake model")


DATA = GGUF_MAGIC + bytes(range(256)) * 40


def test_the_model_is_assembled_once_from_its_chunks_and_reused(tmp_path, monkeypatch):
    model = fake_model(tmp_path, monkeypatch, DATA)
    path = model_path(model)
    assert path == tmp_path / "models" / "fake.gguf" and path.read_bytes() == DATA
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    mtime = path.stat().st_mtime_ns
    assert model_path(model) == path and path.stat().st_mtime_ns == mtime  # checked by its stamp, not rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", "fake.gguf", "fake.gguf.verified"]
    assert not any(m.startswith("fakechunks") for m in sys.modules)


def test_a_damaged_copy_is_rebuilt_and_never_served(tmp_path, monkeypatch):
    model = fake_model(tmp_path, monkeypatch, DATA)
    path = model_path(model)
    damaged = bytearray(DATA)
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, other bytes (and a newer mtime than the stamp's)
    assert model_path(model).read_bytes() == DATA
    path.write_bytes(DATA[:-10])  # cut short
    assert model_path(model).read_bytes() == DATA


@pytest.mark.parametrize("case, message", [
    ("bad hash", r"sha256 is [0-9a-f]{64}, not the pinned .*reinstall the chunk packages with pip install"),
    ("no magic", r"does not start with the GGUF magic"),
    ("wrong size", r"add up to .* bytes, not the pinned .*reinstall"),
    ("missing package", r"the model chunk package fakechunks-part9 is not installed: pip install 'llm-erm\[local-llm\]'"),
])
def test_bad_chunks_are_refused_in_one_line_and_leave_nothing(tmp_path, monkeypatch, case, message):
    data = DATA if case != "no magic" else b"XXXX" + DATA[4:]
    model = fake_model(tmp_path, monkeypatch, data)
    if case == "bad hash":
        model = BundledModel(**{**model.__dict__, "sha256": "0" * 64})
    elif case == "no magic":
        model = BundledModel(**{**model.__dict__})
    elif case == "wrong size":
        model = BundledModel(**{**model.__dict__, "size": model.size + 1})
    else:
        model = BundledModel(**{**model.__dict__, "packages": (*model.packages, "fakechunks_part9")})
    with pytest.raises(UsageError, match=message) as caught:
        model_path(model)
    assert "\n" not in str(caught.value)
    left = sorted(p.name for p in (tmp_path / "models").iterdir()) if (tmp_path / "models").exists() else []
    assert left in ([], [".lock"])  # no model file, no temporary file


def test_the_bundled_model_is_the_pinned_gguf_outside_the_source_tree():
    path = model_path()
    assert path.stat().st_size == MODEL.size == 491_400_064
    with open(path, "rb") as handle:
        assert handle.read(4) == GGUF_MAGIC
    # the venv (or $LLM_ERM_MODELS_DIR): outside the repository, or in a git-ignored place of it (CI's .venv)
    if path.resolve().is_relative_to(REPO):
        assert subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO).returncode == 0


# -- the command ----------------------------------------------------------------------------------------
CLI = """
import sys
from llm_erm import cli
from llm_erm.cli import local_model
if not any(group.name == "local-model" for group in cli.app.registered_groups):
    local_model.register(cli.app)  # until llm_erm/cli/__init__.py registers it
sys.argv = ["llm-erm", *sys.argv[1:]]
cli.main()
"""


def llm_erm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_local_model_serve_has_help_with_an_example():
    done = llm_erm("local-model", "serve", "--help")
    assert done.returncode == 0
    assert "llm-erm local-model serve --port 8080" in done.stdout and "--ctx-size" in done.stdout
    assert "Examples" in done.stdout and "--threads" in done.stdout


def test_local_model_refusals_are_one_line_with_exit_code_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = llm_erm("local-model", "serve", "--port", str(port))
    assert busy.returncode == 2
    assert busy.stderr.strip().splitlines() == [f"error: port {port} on 127.0.0.1 is not free (Address already in use): "
                                                "pick another --port, or 0 for a free one"]
    small = llm_erm("local-model", "serve", "--ctx-size", "10")
    assert small.returncode == 2 and small.stderr.count("\n") == 1
    assert small.stderr.startswith("error: --ctx-size 10 is out of range: pass 256..32768")
    word = llm_erm("local-model", "serve", "--port", "eighty")
    assert word.returncode == 2 and word.stderr.count("\n") == 1 and "--port" in word.stderr


def test_local_model_path_prints_the_verified_file():
    done = llm_erm("local-model", "path")
    assert done.returncode == 0 and Path(done.stdout.strip()) == model_path()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_local_model_serve_serves_until_interrupted(stop):
    """What a user runs: the server comes up on the port it prints, answers, and Ctrl-C (or a kill) stops it."""
    child = subprocess.Popen([sys.executable, "-c", CLI, "local-model", "serve", "--port", "0", "--ctx-size", "512"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stderr.readline()
        while line and "serving" not in line:
            line = child.stderr.readline()
        assert "as model 'qwen2.5-coder-0.5b'" in line, line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=10) as response:
            assert json.loads(response.read()) == {"status": "ok"}
        child.send_signal(stop)
        assert child.wait(timeout=20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# -- per-attempt seeds (a scripted local server records what is sent) -------------------------------------
def test_two_attempts_send_different_seeds_and_a_fresh_rerun_sends_the_same_ones(tmp_path, wire_server):
    import shutil

    from llm_erm import GridConfig, run_grid

    wire_server.answer = lambda endpoint, body: '{"code": "def f(x):\\n    return 0"}'  # never solved
    cfg = GridConfig(functions=["fn_a"], lengths=[12], attempts=3, trials=2, train_size=10, val_size=10,
                     test_size=100, analyze=False, run_id="seeds", verify_workers=1, concurrency=1,
                     proposer={"kind": "openai-chat", "base_url": wire_server.url, "model": "local"},
                     results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"))

    def sent() -> list[int]:
        return [r.body["seed"] for r in wire_server.requests if r.method == "POST"]

    assert run_grid(cfg).ok
    first = sent()
    assert len(first) == 6 and len(set(first)) == 6  # 2 trials x 3 attempts: six different samples
    shutil.rmtree(tmp_path / "results")  # from scratch: no ledger, no journal
    wire_server.reset()
    assert run_grid(cfg).ok
    assert sorted(sent()) == sorted(first)  # the same seeds (trials may interleave differently)
    other = GridConfig(**{**cfg.model_dump(), "run_id": "other-run"})
    wire_server.reset()
    assert run_grid(other).ok
    assert not set(sent()) & set(first)  # another run draws other samples


def test_a_server_that_does_not_say_its_context_is_not_refused(wire_server):
    p = make_proposer(ProposerConfig(kind="openai-chat", base_url=wire_server.url, model="local"))
    for _ in range(3):
        p.check_prompt("x" * 100_000)
    assert [r.path for r in wire_server.requests] == ["/props"]  # asked once, then known not to tell


# -- against the real model ------------------------------------------------------------------------------
def real_proposer(local_llm, **settings):
    settings.setdefault("max_output_tokens", 96)
    return make_proposer(ProposerConfig(kind="openai-chat", base_url=local_llm.base_url, model=local_llm.model,
                                        call_timeout_s=600, **settings))


def paper_prompt(tmp_path: Path, train_size: int, length: int = 20, target: str = "fn_a") -> str:
    from llm_erm import GridConfig
    from llm_erm.datasets import build_dataset
    from llm_erm.proposers.prompt import build_prompt

    cfg = GridConfig(functions=[target], lengths=[length], train_size=train_size, val_size=train_size, test_size=100,
                     datasets_dir=str(tmp_path / "datasets"))
    return build_prompt(build_dataset(cfg.dataset_specs()[0], tmp_path / "datasets"))


def server_tokens(local_llm) -> tuple[float, float]:
    metrics = local_llm.metrics()
    return metrics["llamacpp:prompt_tokens_total"], metrics["llamacpp:tokens_predicted_total"]


def test_context_overflow_is_refused_before_any_call_and_otherwise_a_permanent_error_naming_the_fix(
        local_llm, tmp_path):
    p = real_proposer(local_llm, max_output_tokens=1024)
    assert p.server_context() == 2048
    short = paper_prompt(tmp_path, 10)
    p.check_prompt(short)  # fits: no refusal
    before = server_tokens(local_llm)
    too_long = paper_prompt(tmp_path, 100)  # ~2 500 tokens > 2 048 on its own
    with pytest.raises(UsageError, match=r"a prompt of 2,\d{3} tokens plus the output cap of 1,024 exceed the "
                       r"2,048-token context of the server at http://127\.0\.0\.1:\d+/v1: shorten the prompt "
                       r"\(--train-size\), or restart the server with a context of 4,096 .*--ctx-size 4096"):
        p.check_prompt(too_long)
    tight = paper_prompt(tmp_path, 50)  # ~1 300 tokens: fits, but not with 1 024 tokens of answer
    with pytest.raises(UsageError, match=r"lower --max-output-tokens to \d{3} or less, shorten the prompt"):
        p.check_prompt(tight)
    assert server_tokens(local_llm) == before  # counting tokens processes nothing
    # Sent anyway, the real server's 400 becomes a permanent error with the same fixes and its own words.
    with pytest.raises(PermanentProposerError, match=r"400 Bad Request .*exceed the server's context window: lower "
                       r"--max-output-tokens.*llama\.cpp: --ctx-size.*server said: request \(\d+ tokens\) exceeds "
                       r"the available context size \(2048 tokens\)"):
        p.propose(ProposeRequest(too_long, trial=1, attempt=1, seed=1))


def test_sampling_settings_seeds_and_structured_output_against_the_real_server(local_llm):
    prompt = "Name one colour. Answer with one word."
    fixed = real_proposer(local_llm, max_output_tokens=6, temperature=1.0, top_p=0.9,
                          extra_body={"cache_prompt": False})  # answers that do not depend on the prompt cache
    first = fixed.propose(ProposeRequest(prompt, trial=1, attempt=1, seed=7))
    again = fixed.propose(ProposeRequest(prompt, trial=1, attempt=1, seed=7))
    assert first.text == again.text and first.text  # one seed, one sample
    assert first.usage.cached_tokens == 0 and first.finish_reason in ("stop", "length")
    greedy = real_proposer(local_llm, max_output_tokens=6, temperature=0.0, extra_body={"cache_prompt": False})
    texts = {greedy.propose(ProposeRequest(prompt, trial=1, attempt=a, seed=a)).text for a in (1, 2)}
    assert len(texts) == 1  # temperature 0: the seed does not matter
    structured = real_proposer(local_llm, max_output_tokens=160, structured_output=True, temperature=0.2)
    answer = structured.propose(ProposeRequest("Write a Python function f(x) that returns the number of '1' "
                                               "characters in the string x, modulo 2.", trial=1, attempt=1, seed=3))
    assert answer.finish_reason == "stop", answer  # the schema closes the object
    assert isinstance(json.loads(answer.text)["code"], str)  # the whole text is the JSON object asked for


def test_a_small_grid_against_the_real_model_records_answers_usage_and_finish_reasons_and_resumes_without_calls(
        local_llm, tmp_path):
    from llm_erm import GridConfig, run_grid
    from llm_erm.results import ledger
    from llm_erm.verify.extract import extract_code

    cfg = GridConfig(
        functions=["fn_a", "fn_c"], lengths=[12], attempts=2, trials=1, train_size=10, val_size=10, test_size=100,
        proposer={"kind": "openai-chat", "base_url": local_llm.base_url, "model": local_llm.model,
                  "max_output_tokens": 128, "temperature": 0.8, "call_timeout_s": 600},
        methods=["erm", {"method": "icl", "settings": {"test_prompts": 2, "max_tokens": 16}}],
        concurrency=1, verify_workers=1, analyze=False, run_id="real",
        results_dir=str(tmp_path / "results"), datasets_dir=str(tmp_path / "datasets"),
    )
    result = run_grid(cfg)
    assert result.ok, result.failure_message()
    run_dir = tmp_path / "results" / "real"
    every = with_prompts(run_dir, ledger.read_attempts(run_dir).to_pylist())  # prompts are stored once per run
    rows = sorted((r for r in every if r["method"] == "erm"), key=lambda r: (r["target"], r["attempt"]))
    icl_rows = [r for r in every if r["method"] == "icl"]
    assert {r["target"] for r in rows} == {"fn_a", "fn_c"} and 2 <= len(rows) <= 4
    counter = real_proposer(local_llm)
    for row in rows:
        assert row["status"] in ANSWER_STATUSES, row["status"]
        assert row["finish_reason"] in ("stop", "length") and row["truncated"] == (row["finish_reason"] == "length")
        assert row["prompt_tokens"] == counter.prompt_tokens(row["prompt"])  # the server's own count
        assert 0 < row["completion_tokens"] <= 128 and row["cached_tokens"] <= row["prompt_tokens"]
        assert row["response_model"] == local_llm.model and row["response_id"].startswith("chatcmpl-")
        assert row["cost_usd"] is None  # a local model is unpriced, never free
        assert (row["code"] is not None) == (extract_code(row["text"]) is not None)
        assert (row["status"] == "no_code") == (row["code"] is None)
    for target in ("fn_a", "fn_c"):
        seeds = [r["seed"] for r in rows if r["target"] == target]
        assert len(seeds) == len(set(seeds))  # each attempt its own sample
    # icl: two test inputs per cell, each answered (a parsed label or counted unparsed), with usage
    assert {r["target"] for r in icl_rows} == {"fn_a", "fn_c"}
    for row in icl_rows:
        extra = json.loads(row["method_extra"])
        assert row["status"] == "ok" and extra["answered"] == 2 and 0 <= extra["parsed"] <= 2
        assert row["test_acc"] in (0.0, 0.5, 1.0) and row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        assert set(row["finish_reason"].split(",")) <= {"stop", "length"}
    before = server_tokens(local_llm)
    again = run_grid(cfg)  # resume: every trial is done
    assert again.ok and again.pending_before == 0 and not again.trials
    for path in (run_dir / "attempts").rglob("trial*.parquet"):  # lose the ledger, keep the journal
        path.unlink()
    replayed = run_grid(cfg)
    assert replayed.ok and replayed.pending_before == 4
    rows_again = sorted((r for r in ledger.read_attempts(run_dir).to_pylist() if r["method"] == "erm"),
                        key=lambda r: (r["target"], r["attempt"]))
    assert [r["text"] for r in rows_again] == [r["text"] for r in rows]
    assert all(r["reused_answer"] for r in rows_again)
    assert server_tokens(local_llm) == before  # not one token processed: no new call


def test_the_server_runs_on_one_thread_with_a_bounded_context(local_llm):
    log = Path(local_llm.log_path).read_text(errors="replace")
    assert "n_threads = 1" in log and "n_ctx_slot = 2048" in log

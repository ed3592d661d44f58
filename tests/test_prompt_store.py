"""Each distinct prompt is stored once per run; rows keep its hash; readers resolve it, and ledgers of the
earlier layout (the prompt in every row) still read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llm_erm import GridConfig, run_grid
from llm_erm.results import ledger
from llm_erm.results.export import export_rows
from llm_erm.results.prompts import PROMPTS_DIR, with_prompts
from llm_erm.results.rows import attempt_row, finish_trial


def grid(tmp_path: Path, **overrides) -> GridConfig:
    return GridConfig(**{"functions": ["fn_a", "fn_c"], "lengths": [20], "test_size": 200, "trials": 2,
                         "proposer": "enumerate", "analyze": False, "run_id": "p",
                         "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets"),
                         **overrides})


def test_a_run_stores_each_prompt_once_and_its_readers_resolve_the_hash(tmp_path):
    from llm_erm.viewer.data import Results

    result = run_grid(grid(tmp_path))
    assert result.ok
    rows = ledger.read_attempts(result.run_dir).to_pylist()
    assert len(rows) >= 4 and all(r["prompt"] is None and r["prompt_sha256"] for r in rows)
    stored = sorted((result.run_dir / PROMPTS_DIR).iterdir())
    assert len(stored) == 2  # two cells, one prompt each, whatever the trials and attempts
    for path in stored:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    assert {r["prompt_sha256"] for r in rows} == {p.stem for p in stored}
    # the export and the viewer give the text back
    texts = {p.stem: p.read_text() for p in stored}
    exported = export_rows(result.run_dir)
    assert exported and all(r["prompt"] == texts[r["prompt_sha256"]] for r in exported)
    assert all(r["prompt"].startswith("**Problem Statement:**") for r in exported)
    row = rows[0]
    page = Results(tmp_path / "results").attempt("p", "erm", row["target"], row["length"], row["trial"],
                                                 row["attempt"])
    assert page["row"]["prompt"] == texts[row["prompt_sha256"]]
    # request_params: the request's parameters only; the proposer and model have their own columns
    params = json.loads(row["request_params"])
    assert row["proposer"] == "enumerate" and not {"provider", "model", "base_url", "tools"} & set(params)
    assert params["max_programs"] == 200_000


def test_a_ledger_of_the_earlier_layout_still_reads(tmp_path):
    """Rows as the engine wrote them before the store: the whole prompt in every row, no prompts/ folder."""
    from llm_erm.viewer.data import Results

    run_dir = tmp_path / "results" / "old"
    prompt = "**Problem Statement:**\nan old prompt\n```\n0101 -> 0\n```"
    identity = {"run_id": "old", "method": "erm", "method_label": "erm", "target": "fn_a", "target_name": "parity",
                "length": 4, "trial": 1, "prompt": prompt, "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
                "request_params": json.dumps({"provider": "openai-chat", "model": "m", "params": {}})}
    proposal = {"text": "def f(x): return 0", "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                "reasoning_tokens": 0, "cached_tokens": 0}, "latency_s": 0.1, "model": "m", "cost_usd": None}
    rows = finish_trial([attempt_row(identity=identity, attempt=1, proposal=proposal,
                                     verdict={"status": "ok", "val_acc": 0.5, "test_acc": 0.5})], 1)
    ledger.write_trial(run_dir, "erm", "fn_a", 4, 1, rows)
    ledger.write_json(run_dir / ledger.MANIFEST_FILE, {"run_id": "old"})
    assert not (run_dir / PROMPTS_DIR).exists()
    assert [r["prompt"] for r in export_rows(run_dir)] == [prompt]
    assert with_prompts(run_dir, ledger.read_attempts(run_dir).to_pylist())[0]["prompt"] == prompt
    assert Results(tmp_path / "results").attempt("old", "erm", "fn_a", 4, 1, 1)["row"]["prompt"] == prompt

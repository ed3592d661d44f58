"""A run is named by what determines its answers: the template's text, the replay source's content, the
settings; never a path. And `run_trial` works inside the grid's own run (the README's notebook snippet)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "flows"))
from scripted import FIRST_BIT, PARITY, WRONG, SeededModel  # noqa: E402

from llm_erm import GridConfig  # noqa: E402
from llm_erm.results import ledger  # noqa: E402
from llm_erm.results.prompts import with_prompts  # noqa: E402
from llm_erm.wire.server import WireServer  # noqa: E402

TEMPLATE = "Learn f on {length} bits ({alphabet}).\n```\n{examples}\n```\nAnswer with Python code for f(x)."


def grid(tmp_path: Path, **overrides) -> GridConfig:
    return GridConfig(**{"functions": ["fn_a"], "lengths": [20], "test_size": 200, "proposer": "enumerate",
                         "results_dir": str(tmp_path / "results"), "datasets_dir": str(tmp_path / "datasets"),
                         "analyze": False, **overrides})


def test_one_template_under_two_paths_is_one_run_and_an_edited_template_is_another(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.txt").write_text(TEMPLATE)
    Path("sub").mkdir()
    Path("sub/copy.txt").write_text(TEMPLATE)
    ids = {grid(tmp_path, prompt_template=path).resolved_run_id()
           for path in ("t.txt", "./t.txt", str(tmp_path / "t.txt"), "sub/../t.txt", "sub/copy.txt")}
    assert len(ids) == 1
    (run_id,) = ids
    assert run_id != grid(tmp_path).resolved_run_id()  # the paper's prompt is another run
    Path("t.txt").write_text(TEMPLATE.replace("Learn f", "Find f"))
    assert grid(tmp_path, prompt_template="t.txt").resolved_run_id() != run_id
    assert grid(tmp_path, prompt_template="./sub/copy.txt").resolved_run_id() == run_id


def test_settings_that_reach_a_request_or_a_score_change_the_id_and_the_others_do_not(tmp_path):
    base = grid(tmp_path).resolved_run_id()
    for changed in ({"attempts": 4}, {"seed": 7}, {"selection": "shortest"}, {"candidate_timeout_s": 0.02},
                    {"proposer": {"kind": "enumerate", "enumerate_max_programs": 10}}, {"sanitize": False}):
        assert grid(tmp_path, **changed).resolved_run_id() != base, changed
    for same in ({"concurrency": 9}, {"results_dir": "elsewhere"}, {"datasets_dir": "d2"}, {"retries": 1},
                 {"budget_usd": 3.0}, {"verify_workers": 1}):
        assert grid(tmp_path, **same).resolved_run_id() == base, same


def test_a_replay_source_is_named_by_its_content_not_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = {"prompt": "p", "trial": 1, "attempt": 1, "text": "def f(x):\n    return 0"}
    Path("a.jsonl").write_text(json.dumps(record) + "\n")
    Path("b").mkdir()
    Path("b/a.jsonl").write_text(json.dumps(record) + "\n")

    def run_id(path: str) -> str:
        return grid(tmp_path, proposer={"kind": "replay", "replay_from": path}).resolved_run_id()

    assert run_id("a.jsonl") == run_id("./a.jsonl") == run_id(str(tmp_path / "a.jsonl")) == run_id("b/a.jsonl")
    Path("b/a.jsonl").write_text(json.dumps({**record, "text": "def f(x):\n    return 1"}) + "\n")
    assert run_id("b/a.jsonl") != run_id("a.jsonl")


def test_the_manifest_records_the_templates_digest_and_text(tmp_path):
    from llm_erm import run_grid

    (tmp_path / "t.txt").write_text(TEMPLATE)
    result = run_grid(grid(tmp_path, prompt_template=str(tmp_path / "t.txt")))
    assert result.ok
    recorded = ledger.read_manifest(result.run_dir)["prompt_template"]
    assert recorded["text"] == TEMPLATE and recorded["path"] == str(tmp_path / "t.txt")
    import hashlib

    assert recorded["sha256"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    # the prompts sent are the template's: every row's prompt starts with its text
    rows = with_prompts(result.run_dir, ledger.read_attempts(result.run_dir).to_pylist())
    assert rows and all(r["prompt"].startswith("Learn f on 20 bits") for r in rows)


def test_the_readme_notebook_snippet_run_trial_reads_the_grids_run_and_buys_nothing_again(tmp_path):
    """README: `result = run_grid(config)` then `one = run_trial(config, "fn_a", 20, trial=1)` "into the same
    ledger": the same run, the trial already done is read back, no call is made again."""
    from llm_erm import run_grid, run_trial

    model = SeededModel([WRONG, FIRST_BIT, PARITY])
    with WireServer(model) as server:
        config = grid(tmp_path, functions=["fn_a", "fn_c"], attempts=3, trials=2, retry_delay_s=0.01,
                      proposer={"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 10})
        result = run_grid(config)
        assert result.ok
        bought = len(model.sales)
        rows = {(r["trial"], r["attempt"]): r for r in ledger.read_attempts(result.run_dir).to_pylist()
                if r["target"] == "fn_a"}
        one = run_trial(config, "fn_a", 20, trial=1)
        assert len(model.sales) == bought  # nothing bought twice
    assert [p.name for p in (tmp_path / "results").iterdir()] == [result.run_dir.name]  # no second run
    assert one.complete and one.selected["test_acc"] == rows[(1, one.selected["attempt"])]["test_acc"]
    assert one.selected["selected"] and one.selected["text"] == rows[(1, one.selected["attempt"])]["text"]


def test_run_trial_before_the_grid_is_part_of_it_and_the_grid_does_not_redo_it(tmp_path):
    from llm_erm import run_grid, run_trial

    model = SeededModel([WRONG, PARITY])
    with WireServer(model) as server:
        config = grid(tmp_path, attempts=2, trials=2, retry_delay_s=0.01,
                      proposer={"kind": "openai-chat", "base_url": server.url, "call_timeout_s": 10})
        first = run_trial(config, "fn_a", 20, trial=2)
        assert first.complete and len(model.sales) == len(first.rows)
        result = run_grid(config)
        assert result.ok and result.pending_before == 1  # trial 1 only
        assert ledger.finished_trials(result.run_dir) == {("erm", "fn_a", 20, 1), ("erm", "fn_a", 20, 2)}
    assert sum(model.sold().values()) == len(model.sold())  # each request bought once


def test_run_trial_outside_the_grid_is_refused_by_name(tmp_path):
    import pytest

    from llm_erm import run_trial
    from llm_erm.errors import UsageError

    with pytest.raises(UsageError, match="fn_b L20 trial 1 is not in this grid"):
        run_trial(grid(tmp_path), "fn_b", 20)
    with pytest.raises(UsageError, match="trial 3 is not in this grid"):
        run_trial(grid(tmp_path), "fn_a", 20, trial=3)


def test_the_readme_notebook_snippet_as_written(tmp_path, monkeypatch):
    """The README's snippet itself, run in an empty folder: one run, and run_trial reads the grid's trial."""
    import re

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"\*\*From a notebook\*\*.*?```python\n(.*?)```", readme, re.DOTALL)
    assert block and "run_trial(" in block.group(1), "the README's notebook snippet moved: update this test"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    runs = list((tmp_path / "results").iterdir())
    assert [p.name for p in runs] == [scope["result"].run_id]  # "into the same ledger"
    assert scope["result"].ok and scope["one"].complete
    first = next(r for r in ledger.read_attempts(runs[0]).to_pylist()
                 if (r["target"], r["length"], r["trial"], r["selected"]) == ("fn_a", 20, 1, True))
    assert scope["one"].selected["test_acc"] == first["test_acc"] and scope["one"].selected["text"] == first["text"]

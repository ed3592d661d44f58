"""Runs are relocatable: a run folder and its datasets folder may move anywhere, or the run alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from llm_erm import GridConfig, run_grid

LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))


def llm_erm(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LLM_ERM, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_a_moved_run_is_analysed_and_generalised_from_anywhere(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)  # the run records its datasets relative to here, as a user's does
    cfg = GridConfig(functions=["fn_a", "fn_c"], lengths=[20], test_size=400, proposer="enumerate", run_id="r",
                     analyze=False)
    assert run_grid(cfg).ok
    monkeypatch.chdir(tmp_path)

    # 1. results/ and datasets/ moved together, analysed from elsewhere with --datasets-dir
    moved = tmp_path / "archive"
    shutil.copytree(project / "results", moved / "runs")
    shutil.copytree(project / "datasets", moved / "data")
    shutil.rmtree(project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = llm_erm(elsewhere, "analyze", "--run-id", "r", "--results-dir", str(moved / "runs"), "--datasets-dir",
                   str(moved / "data"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "leakage check passed" in done.stdout and "rebuilt" not in done.stdout, done.stdout
    assert not (elsewhere / "datasets").exists()
    done = llm_erm(elsewhere, "generalize", "--run-id", "r", "--lengths", "30", "--test-size", "200",
                   "--results-dir", str(moved / "runs"), "--datasets-dir", str(moved / "data"), "--sandbox", "auto")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "L30" in done.stdout

    # 2. the run alone: its datasets are rebuilt (content-hashed, the same data), and that is said
    shutil.rmtree(moved / "data")
    done = llm_erm(elsewhere, "analyze", "--run-id", "r", "--results-dir", str(moved / "runs"), "--datasets-dir",
                   "rebuilt")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rebuilt 2 missing dataset(s)" in done.stdout and "leakage check passed" in done.stdout, done.stdout
    assert len(list((elsewhere / "rebuilt").glob("*/L20/seed*/meta.json"))) == 2

    # 3. datasets that can be neither found nor rebuilt: "not checked", never a leak, never "passed"
    shutil.rmtree(elsewhere / "rebuilt")
    manifest = moved / "runs" / "r" / "manifest.json"
    manifest.write_text("{}")  # no configuration to rebuild from
    done = llm_erm(elsewhere, "analyze", "--run-id", "r", "--results-dir", str(moved / "runs"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not checked" in done.stdout and "leakage check passed" not in done.stdout, done.stdout
    assert "FAILED" not in done.stdout and "leak:" not in done.stdout
    report = (moved / "runs" / "r" / "report" / "report.html").read_text()
    assert "FAILED" not in report and "not checked" in report

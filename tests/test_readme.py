"""Every command and config in README.md runs as written: `llm-erm run` as a dry run (it spends nothing),
the commands that read a run on a small offline run made first, the viewer started and stopped, the TOML
config through `--config`, and the deployment's `--params` as a GridConfig. A README example that breaks
fails here."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
LLM_ERM = str(Path(sys.executable).with_name("llm-erm"))
FAKE_KEYS = {"OPENAI_API_KEY": "sk-readme-test", "ANTHROPIC_API_KEY": "sk-ant-readme-test",
             "GEMINI_API_KEY": "readme-test"}
pytestmark = pytest.mark.slow


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def commands() -> list[tuple[list[str], bool]]:
    """(argv after `llm-erm`, whether an OPENAI_API_KEY is exported before it) for every llm-erm command."""
    found = []
    for block in blocks("bash"):
        key = False
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens[:2] == ["export", "OPENAI_API_KEY=sk-..."]:
                key = True
            segment: list[str] = []
            for token in [*tokens, "&&"]:
                if token != "&&":
                    segment.append(token)
                    continue
                if segment and segment[0] in ("llm-erm", ".venv/bin/llm-erm"):
                    found.append((segment[1:], key))
                segment = []
    return found


def test_the_readme_shows_the_commands_this_test_runs():
    subcommands = {argv[0] for argv, _ in commands()}
    assert {"run", "status", "generalize", "analyze", "compare", "view", "export", "local-model"} <= subcommands
    assert len(blocks("toml")) == 1


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A checkout-like directory with one small finished offline run, RUN."""
    root = tmp_path_factory.mktemp("readme")
    done = subprocess.run([LLM_ERM, "run", "--functions", "fn_a", "--lengths", "20", "--trials", "1",
                           "--test-size", "400", "--no-prefect", "--run-id", "readme-run"], cwd=root,
                          env=environment(False), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (root / "grid.toml").write_text(blocks("toml")[0])
    return root


def environment(key: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FAKE_KEYS and not k.startswith("PREFECT_API")}
    return {**env, **(FAKE_KEYS if key else {})}


def substituted(argv: list[str], base_url: str) -> list[str]:
    names = {"RUN_ID": "readme-run", "BASELINE_RUN": "readme-run", "CANDIDATE_RUN": "readme-run"}
    # the README's local server: ours stands in for it on a free port (8000 may be anyone's)
    return [base_url if a == "http://127.0.0.1:8000/v1" else names.get(a, a) for a in argv]


@pytest.mark.parametrize(("argv", "key"), commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_every_readme_command_runs_as_written(project, wire_server, argv, key, tmp_path):
    argv = substituted(argv, wire_server.url)
    env = environment(key)
    if argv[0] == "view":  # a server: it must come up, say where, and stop on Ctrl-C
        proc = subprocess.Popen([LLM_ERM, *argv, "--port", "0"], cwd=project, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        line = proc.stdout.readline()
        assert "at http://127.0.0.1:" in line, line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) in (0, 130)
        return
    if argv[0] == "local-model":  # a real model server (the local-llm extra): its command line is checked
        argv = [*argv, "--help"]
    elif argv[0] == "run" and "--dry-run" not in argv:
        argv = [*argv, "--dry-run"]  # as written, but spending nothing: every prompt and the cost
    elif argv[0] == "export":
        argv = [a if a != "attempts.csv" else str(tmp_path / "attempts.csv") for a in argv]
    started = time.monotonic()
    done = subprocess.run([LLM_ERM, *argv], cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"llm-erm {' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}"
    print(f"llm-erm {' '.join(argv)}: {time.monotonic() - started:.1f} s")


def test_the_deployment_parameters_in_the_readme_are_a_valid_grid():
    from llm_erm.config import GridConfig

    text = README.read_text()
    (params,) = re.findall(r"--params '(\{.*?\})'", text)
    GridConfig(**json.loads(params), attempts=3)

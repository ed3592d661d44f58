"""Which Prefect API `llm-erm run` uses: the one the user configured, found the way Prefect finds it, else a
temporary server of the run's own; never one merely listening on a port."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llm_erm import prefect_env

CASES = {
    "nothing": {},
    "environment": {"env": {"PREFECT_API_URL": "http://127.0.0.1:1111/api"},
                    "prefect.toml": '[api]\nurl = "http://127.0.0.1:2222/api"\n'},
    "prefect.toml": {"prefect.toml": '[api]\nurl = "http://127.0.0.1:2222/api"\n',
                     "profiles": 'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://127.0.0.1:4444/api"\n'},
    "pyproject": {"pyproject.toml": '[tool.prefect.api]\nurl = "http://127.0.0.1:3333/api"\n'},
    "active profile": {"profiles": 'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://127.0.0.1:4444/api"'
                                   '\n[profiles.other]\nPREFECT_API_URL = "http://127.0.0.1:5555/api"\n'},
    "PREFECT_PROFILE": {"env": {"PREFECT_PROFILE": "other"},
                        "profiles": 'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://127.0.0.1:4444/api"'
                                    '\n[profiles.other]\nPREFECT_API_URL = "http://127.0.0.1:5555/api"\n'},
    "profile without a server": {"profiles": 'active = "mine"\n[profiles.mine]\nPREFECT_LOGGING_LEVEL = "INFO"\n'},
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_configured_api_is_the_one_prefect_itself_would_use(tmp_path, monkeypatch, case):
    spec = CASES[case]
    home, cwd = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    cwd.mkdir()
    for name in ("prefect.toml", "pyproject.toml"):
        if name in spec:
            (cwd / name).write_text(spec[name])
    if "profiles" in spec:
        (home / "profiles.toml").write_text(spec["profiles"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), **spec.get("env", {}))

    prefect_says = subprocess.run(
        [sys.executable, "-c", "from prefect.settings import get_current_settings as s; print(s().api.url)"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()

    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("PREFECT_"):
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(cwd)
    found = prefect_env.configured_api_url()
    assert (found[0] if found else "None") == prefect_says
    line = prefect_env.planned()
    if found is None:
        assert line.startswith("prefect: a temporary server for this run only"), line
    else:
        assert line.startswith(f"prefect: the server at {prefect_says} (from "), line


def test_a_configured_server_that_does_not_answer_is_refused_naming_where_it_was_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # the discard port: nothing listens
    says = r"127\.0\.0\.1:9/api \(from PREFECT_API_URL\) does not answer"
    with pytest.raises(prefect_env.UsageError, match=says), prefect_env.connect():
        pass


"""One configuration: every GridConfig field is an `llm-erm run` option and an erm-grid flow parameter."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from llm_erm.config import GridConfig, MethodSpec, option_name
from llm_erm.errors import UsageError
from llm_erm.proposers.config import ProposerConfig


def run_command():
    import typer.main

    from llm_erm.cli import app

    return typer.main.get_command(app).commands["run"]


def test_every_config_field_is_a_run_option_and_a_flow_parameter():
    from llm_erm.flows.grid import erm_grid

    options = {opt for param in run_command().params for opt in param.opts}
    grid_fields = [f for f in GridConfig.model_fields if f != "proposer"]
    missing = [f for f in grid_fields if option_name(f) not in options]
    missing += [f"proposer.{f}" for f in ProposerConfig.model_fields if option_name(f, nested=True) not in options]
    assert not missing, f"fields without an `llm-erm run` option: {missing}"
    flow_params = inspect.signature(erm_grid.fn).parameters
    assert list(flow_params) == list(GridConfig.model_fields), "the flow's parameters are not GridConfig's fields"
    assert set(erm_grid.parameters.properties) == set(GridConfig.model_fields)  # what the UI's form shows
    for name, field in GridConfig.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        assert flow_params[name].default == default, name


def test_every_option_reaches_its_field():
    """Set every option to a value other than its default: the config built from the command line has it."""
    from llm_erm.cli.run import config_from_options, grid_options

    given, expected_grid, expected_proposer = {}, {}, {}
    samples = {"functions": (["fn_b", "mymod:f"], ["fn_b", "mymod:f"]), "lengths": (["24"], [24]), "alphabet": ("decimal", "decimal"),
               "prompt_variant": ("explain", "explain"), "selection": ("shortest", "shortest"),
               "sandbox": ("auto", "auto"), "kind": ("openai-chat", "openai-chat"),
               "reasoning_effort": ("low", "low"), "verbosity": ("medium", "medium"), "tool_choice": ("none", "none"),
               "chat_max_tokens_param": ("max_tokens", "max_tokens"), "top_p": ("0.5", 0.5),
               "tabular_protocol": ("raw", "raw"), "table_files": (["fn_m=adult.csv"], {"fn_m": "adult.csv"}),
               "service_tier": ("flex", "flex"), "extra_body": (['{"cache_prompt": false}'], {"cache_prompt": False}),
               "options": (['{"a": 1}', "b=2", "c=x"], {"a": 1, "b": 2, "c": "x"}),
               # --baseline-protocol paper reaches the classical method's settings
               "methods": (["erm", "xgboost"], [MethodSpec(method="erm"),
                                                MethodSpec(method="xgboost", settings={"protocol": "paper"})]),
               "baseline_protocol": ("paper", "paper"), "preset": ("paper-table", "paper-table"),
               "sample_sizes": (["200", "1000"], [200, 1000]), "generalize_lengths": (["30"], [30]),
               "storage_options": (['{"anon": false}'], {"anon": False}),
               "method_deployments": (["sgd=erm-cell-gpu"], {"sgd": "erm-cell-gpu"})}
    by_metavar = {"INT": ("128", 128), "NUMBER": ("0.5", 0.5), "TEXT": ("other", "other"),
                  "PATH": ("x.jsonl", Path("x.jsonl"))}
    for opt in grid_options():
        if opt.field in samples:
            cli, value = samples[opt.field]
        elif opt.is_flag:
            cli = value = not opt.default
        else:
            cli, value = by_metavar[opt.metavar]
        given[opt.param] = cli
        (expected_proposer if opt.nested else expected_grid)[opt.field] = value
    config = config_from_options(given)
    for name, value in expected_grid.items():
        assert getattr(config, name) == value, name
    for name, value in expected_proposer.items():
        assert getattr(config.proposer, name) == value, f"proposer.{name}"


def test_a_config_file_with_options_on_top(tmp_path):
    from llm_erm.cli.run import config_from_options

    path = tmp_path / "grid.json"
    path.write_text(json.dumps({"functions": ["fn_a"], "attempts": 3, "proposer": {"kind": "openai-chat",
                                                                                  "model": "llama3"}}))
    config = config_from_options({"config_file": path, "attempts": "4", "proposer__base_url": "http://h/v1"})
    assert (config.functions, config.attempts) == (["fn_a"], 4)
    assert (config.proposer.kind, config.proposer.model, config.proposer.base_url) == ("openai-chat", "llama3",
                                                                                       "http://h/v1")
    toml = tmp_path / "grid.toml"
    toml.write_text('functions = ["fn_c"]\ntrials = 2\n[proposer]\nkind = "enumerate"\n')
    config = config_from_options({"config_file": toml})
    assert (config.functions, config.trials, config.proposer.kind) == (["fn_c"], 2, "enumerate")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match="bad.json is not valid JSON"):
        config_from_options({"config_file": tmp_path / "bad.json"})
    with pytest.raises(UsageError, match="--attempts: .*greater than or equal to 1"):
        config_from_options({"attempts": "0"})
    with pytest.raises(UsageError, match=r"--lengths: .*integer.*\(got 'abc'\)"):
        config_from_options({"lengths": ["abc"]})
    with pytest.raises(UsageError, match="--proposer-options takes KEY=VALUE or a JSON object"):
        config_from_options({"proposer__options": ["{oops"]})


def test_the_run_id_hashes_what_is_computed_not_where_or_how_fast():
    base = GridConfig(functions=["fn_a"], proposer="enumerate")
    same = GridConfig(functions=["fn_a"], proposer={"kind": "enumerate", "call_timeout_s": 5}, concurrency=9,
                      results_dir="elsewhere", retries=1, sandbox="auto")
    assert base.resolved_run_id() == same.resolved_run_id()
    for different in (GridConfig(functions=["fn_a"], proposer="enumerate", candidate_timeout_s=1),
                      GridConfig(functions=["fn_a"], proposer="enumerate", selection="shortest"),
                      GridConfig(functions=["fn_a"], proposer={"kind": "enumerate", "enumerate_max_programs": 5})):
        assert different.resolved_run_id() != base.resolved_run_id()

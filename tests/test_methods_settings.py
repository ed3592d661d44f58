"""Settings are validated per learner before any work; a missing extra is named with its install command."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from llm_erm.errors import UsageError
from llm_erm.methods import METHOD_IDS, check_learner, resolve_settings, run_learner
from llm_erm.methods.base import LabelledData


def test_every_learner_resolves_its_defaults():
    assert METHOD_IDS == ("xgboost", "random-forest", "decision-tree", "svm", "logreg", "mlp", "sgd", "finetune")
    for method in METHOD_IDS:
        assert resolve_settings(method) == resolve_settings(method, {})
    assert resolve_settings("xgboost")["n_estimators"] == 100
    sgd = check_learner("sgd")  # per-size defaults filled in: what the result will record
    assert (sgd["size"], sgd["layers"], sgd["d_model"], sgd["lr"], sgd["batch_size"]) == ("tiny", 2, 64, 1e-3, 20)


@pytest.mark.parametrize(
    ("method", "settings", "expected"),
    [
        ("xgboost", {"max_dept": 3}, "xgboost: unknown setting 'max_dept'; did you mean 'max_depth'?"),
        ("xgboost", {"max_depth": -1}, "xgboost: setting max_depth must be a positive integer, got -1"),
        ("xgboost", {"max_depth": True}, "setting max_depth must be a positive integer, got True"),
        ("svm", {"kernel": "cubic"}, "setting kernel must be one of 'rbf', 'linear', 'poly', 'sigmoid'"),
        ("mlp", {"hidden_layer_sizes": [64, 0]}, "setting hidden_layer_sizes must be a non-empty list"),
        ("random-forest", {"features": "bag"}, "setting features must be one of 'onehot', 'ordinal'"),
        ("sgd", {"lr": 0}, "sgd: setting lr must be a positive number, got 0"),
        ("sgd", {"size": "qwen3-8b"}, "setting size must be one of 'tiny', 'qwen3-0.6b', 'qwen3-1.7b'"),
        ("sgd", {"device": "gpu"}, "setting device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("sgd", {"size": "qwen3-1.7b", "layers": 4}, "sgd: setting layers is for size 'tiny' only"),
        ("sgd", {"d_model": 60, "heads": 8}, "d_model (60) must be divisible by heads (8)"),
        ("sgd", {"size": "qwen3-1.7b"}, "sgd: size 'qwen3-1.7b' needs a GPU and torch sees none"),
        ("sgd", {"device": "cuda"}, "device 'cuda' asked for, but torch sees no GPU"),
        ("finetune", {}, "finetune: setting model_path is required"),
        ("finetune", {"model_path": "Qwen/Qwen3-1.7B"}, "model_path 'Qwen/Qwen3-1.7B' does not exist"),
        ("logreg", {"max_iter": "many"}, "setting max_iter must be a positive integer, got 'many'"),
        ("nope", {}, "unknown learner 'nope': use one of xgboost, random-forest"),
    ],
)
def test_bad_settings_are_one_clear_line(method, settings, expected):
    with pytest.raises(UsageError) as caught:
        check_learner(method, settings)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_settings_must_be_a_mapping():
    with pytest.raises(UsageError, match="svm: settings must be a mapping of setting name to value, got list"):
        check_learner("svm", [("C", 1.0)])


def test_numbers_from_a_command_line_are_accepted():
    resolved = resolve_settings("xgboost", {"max_depth": "3", "learning_rate": "0.1", "tune": "true"})
    assert (resolved["max_depth"], resolved["learning_rate"], resolved["tune"]) == (3, 0.1, True)
    assert resolve_settings("mlp", {"hidden_layer_sizes": "64,32"})["hidden_layer_sizes"] == (64, 32)


def test_finetune_path_without_config_is_refused(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UsageError, match="has no config.json"):
        check_learner("finetune", {"model_path": str(tmp_path)})


def test_run_learner_refuses_single_class_training_data():
    data = LabelledData(["01", "11"], [1, 1])
    with pytest.raises(UsageError, match="only label 1"):
        run_learner("logreg", data, data, alphabet="binary", length=2, seed=0)


def _without(modules: list[str], body: str) -> subprocess.CompletedProcess:
    """Run `body` in a fresh interpreter in which `modules` cannot be imported (as if not installed)."""
    code = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_missing_baselines_extra_is_named():
    done = _without(["xgboost", "sklearn"], """
        from llm_erm.errors import UsageError
        from llm_erm.methods import check_learner, resolve_settings
        resolve_settings("xgboost", {"max_depth": 3})  # validating settings needs no extra
        for method in ("xgboost", "logreg"):
            try:
                check_learner(method)
            except UsageError as exc:
                print(exc)
            else:
                print("no error")
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("xgboost needs the Python package 'sklearn'")
    assert all("install the extra: pip install 'llm-erm[baselines]'" in line for line in lines)


def test_missing_torch_extra_is_named():
    done = _without(["torch", "transformers"], """
        from llm_erm.errors import UsageError
        from llm_erm.methods import check_learner
        for method in ("sgd", "finetune"):
            try:
                check_learner(method, {"model_path": "/nonexistent"} if method == "finetune" else None)
            except UsageError as exc:
                print(exc)
        import llm_erm.methods.registry  # importable without the extra
        assert "torch" not in sys.modules or sys.modules["torch"] is None
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [
        f"{method} needs the Python package 'torch', which is not installed; "
        "install the extra: pip install 'llm-erm[torch]'"
        for method in ("sgd", "finetune")
    ]


def test_broken_install_is_named(tmp_path):
    fake = tmp_path / "xgboost"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('libxgboost.so: cannot open shared object file')\n")
    done = _without([], f"""
        sys.path.insert(0, {str(tmp_path)!r})
        from llm_erm.errors import UsageError
        from llm_erm.methods import check_learner
        try:
            check_learner("xgboost")
        except UsageError as exc:
            print(exc)
    """)
    assert done.stdout.strip() == (
        "xgboost needs the Python package 'xgboost', which fails to import (OSError: libxgboost.so: cannot open "
        "shared object file); install the extra: pip install 'llm-erm[baselines]'"
    )

"""verify_candidate on real datasets: the reference programs, the scoring rules, the ledger row, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from llm_erm.datasets import ALL_TARGETS, SEED_TARGETS, DatasetSpec, build_dataset
from llm_erm.results.schema import ATTEMPT_SCHEMA
from llm_erm.verify import Sandbox, verify_candidate

PROGRAMS = Path(__file__).parent / "programs"
HOSTILE = Path(__file__).parent / "hostile"
LENGTH = 24  # every target has it: dyck2 needs L % 4 == 0, the graph target L >= 24
LLM_ERM = str(Path(sys.executable).parent / "llm-erm")
VERIFY_COLUMNS = {
    "code", "sanitized", "status", "train_acc", "val_acc", "test_acc", "val_errors", "test_errors",
    "first_error", "limit_split", "code_lines", "ast_nodes", "branches", "signature", "sandbox",
}


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(workers=2) as box:
        yield box


def dataset(datasets_dir: Path, target: str, length: int = LENGTH):
    return build_dataset(DatasetSpec(target, length, test_size=2000), datasets_dir)


def test_there_is_a_reference_program_for_every_target() -> None:
    assert set(SEED_TARGETS) <= set(ALL_TARGETS)
    assert {p.stem for p in PROGRAMS.glob("fn_*.py")} == set(ALL_TARGETS)


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_reference_programs_score_perfectly(datasets_dir, sandbox, target: str) -> None:
    result = verify_candidate((PROGRAMS / f"{target}.py").read_text(), dataset(datasets_dir, target), sandbox)
    assert result.status == "ok", result.first_error
    assert (result.train_acc, result.val_acc, result.test_acc) == (1.0, 1.0, 1.0)
    assert (result.val_errors, result.test_errors, result.first_error) == (0, 0, None)
    assert result.sanitized and "#" not in result.code  # the comments of the fixture are gone
    assert result.code_lines >= 2 and result.ast_nodes > 5 and result.branches >= 0
    assert len(result.signature) == 64 and result.sandbox == sandbox.mode


SCIENTIFIC = """
import collections
import functools
import itertools
import math
import re

import numpy as np
import sympy


@functools.lru_cache(maxsize=None)
def ones(x):
    return collections.Counter(x)["1"] + 0 * len(list(itertools.islice(x, 2))) + 0 * math.floor(0.5)


def f(x):
    bits = np.array([int(c) for c in re.findall("[01]", x)])
    assert int(bits.sum()) == ones(x) and sympy.isprime(7)
    return int(bits.sum() % 2)
"""


@pytest.mark.parametrize("mode", ["bwrap", "rlimit"])
def test_programs_with_the_usual_imports_run_in_every_mode(datasets_dir, mode) -> None:
    with Sandbox(workers=1, mode=mode) as box:
        result = verify_candidate(SCIENTIFIC, dataset(datasets_dir, "fn_a"), box, is_code=True)
    assert result.status == "ok", result.first_error
    assert (result.val_acc, result.test_acc, result.sandbox) == (1.0, 1.0, mode)


def test_the_answer_forms_score_alike_and_signatures_group_behaviour(datasets_dir, sandbox) -> None:
    data = dataset(datasets_dir, "fn_a")
    plain = "def f(x):\n    return x.count('1') % 2\n"
    other_code_same_behaviour = "def f(x):\n    n = 0\n    for c in x:\n        n ^= c == '1'\n    return n\n"
    answers = [
        plain,
        json.dumps({"code": plain}),
        "<think>parity?</think>Here:\n```python\n" + plain + "```\nDone.",
        'Final answer: {"code": "' + plain + '"}',  # raw newlines inside the JSON string
        other_code_same_behaviour,
    ]
    results = [verify_candidate(answer, data, sandbox) for answer in answers]
    assert all(r.status == "ok" and r.test_acc == 1.0 for r in results)
    assert len({r.signature for r in results}) == 1
    constant = verify_candidate("def f(x):\n    return 0\n", data, sandbox)
    assert constant.signature != results[0].signature


def test_accuracy_is_correct_over_all_rows(datasets_dir, sandbox) -> None:
    data = dataset(datasets_dir, "fn_a")
    # Splits are exactly balanced, so a constant scores exactly one half everywhere.
    constant = verify_candidate("def f(x):\n    return 0\n", data, sandbox)
    assert constant.status == "ok"
    assert (constant.train_acc, constant.val_acc, constant.test_acc) == (0.5, 0.5, 0.5)


def test_errors_count_as_wrong(datasets_dir, sandbox) -> None:
    data = dataset(datasets_dir, "fn_a")
    code = "def f(x):\n    if x[0] == '1':\n        raise ValueError('no ones first')\n    return x.count('1') % 2\n"
    result = verify_candidate(code, data, sandbox)
    assert result.status == "runtime_errors"
    assert result.first_error == "ValueError: no ones first"
    for name, acc, errors in (("val", result.val_acc, result.val_errors), ("test", result.test_acc, result.test_errors)):
        split = data.split(name)
        failing = sum(1 for x in split.inputs if x[0] == "1")
        assert errors == failing
        assert acc == (len(split.inputs) - failing) / len(split.inputs)


def test_no_program_means_no_accuracy(datasets_dir, sandbox) -> None:
    data = dataset(datasets_dir, "fn_a")
    nothing = verify_candidate("I could not find a rule.", data, sandbox)
    assert (nothing.status, nothing.code, nothing.val_acc, nothing.test_acc, nothing.signature) == (
        "no_code", None, None, None, None)
    assert nothing.sandbox == sandbox.mode and nothing.first_error
    broken = verify_candidate("```python\ndef f(x)\n    return 1\n```", data, sandbox)
    assert (broken.status, broken.sanitized, broken.val_acc) == ("syntax_error", False, None)
    assert broken.code == "def f(x)\n    return 1\n" and "SyntaxError" in broken.first_error
    assert broken.ast_nodes is None and broken.code_lines == 2
    nameless = verify_candidate("import math\n", data, sandbox, is_code=True)
    assert (nameless.status, nameless.val_acc) == ("no_function", None)


def test_a_module_that_fails_at_load_scores_zero(datasets_dir, sandbox) -> None:
    data = dataset(datasets_dir, "fn_a")
    result = verify_candidate("import not_a_module\n\ndef f(x):\n    return 1\n", data, sandbox)
    assert result.status == "runtime_errors"
    assert (result.val_acc, result.test_acc, result.val_errors) == (0.0, 0.0, len(data.split("val").inputs))
    assert result.first_error.startswith("at load: ModuleNotFoundError")


def test_a_timeout_on_validation_never_runs_test(datasets_dir) -> None:
    data = dataset(datasets_dir, "fn_a")
    val_inputs = set(data.split("val").inputs)
    # Stalls on the first validation input; the test split would be answered instantly.
    code = f"VAL = {sorted(val_inputs)!r}\n\ndef f(x):\n    while x == VAL[0]:\n        pass\n    return 0\n"
    with Sandbox(workers=1) as box:
        result = verify_candidate(code, data, box)
    assert (result.status, result.limit_split) == ("timeout", "val")
    assert result.test_acc == 0.0 and result.test_errors == len(data.split("test").inputs)
    assert result.val_errors >= 1


def test_sanitising_can_be_turned_off(datasets_dir, sandbox) -> None:
    code = "def f(x):\n    # parity\n    return x.count('1') % 2\n"
    result = verify_candidate(code, dataset(datasets_dir, "fn_a"), sandbox, sanitize=False)
    assert result.status == "ok" and result.sanitized is False and "# parity" in result.code


def test_sanitising_never_changes_what_a_program_does(datasets_dir, sandbox) -> None:
    """A program that reads its own docstring: stripping it would break the program (it once scored 0.5
    instead of 1.0); it is kept as it is."""
    code = 'def f(x):\n    """2"""\n    # parity, the modulus is in the docstring\n    return x.count("1") % int(f.__doc__)\n'
    result = verify_candidate(code, dataset(datasets_dir, "fn_a"), sandbox)
    assert (result.status, result.sanitized, result.code) == ("ok", False, code)
    assert (result.val_acc, result.test_acc) == (1.0, 1.0)


def test_the_program_the_scorer_calls_is_the_one_extracted(datasets_dir, sandbox) -> None:
    answer = ("Solution:\n```python\ndef f(x):\n    return x.count('1') % 2\n```\nUsage:\n"
              "```python\ndef check():\n    return f('1') == 1\n```\n")
    result = verify_candidate(answer, dataset(datasets_dir, "fn_a"), sandbox)
    assert (result.status, result.val_acc, result.test_acc) == ("ok", 1.0, 1.0)


def test_the_dataset_files_are_out_of_reach(datasets_dir) -> None:
    data = dataset(datasets_dir, "fn_l")
    code = (HOSTILE / "read_labels.py").read_text().replace("__DATASET_DIR__", str(data.path))
    for mode, error in (("bwrap", "FileNotFoundError"), ("rlimit", "PermissionError")):
        with Sandbox(workers=1, mode=mode) as box:
            result = verify_candidate(code, data, box)
        assert result.status == "runtime_errors"
        assert result.test_acc == 0.0 and error in result.first_error


def test_to_row_fills_the_ledger_columns(datasets_dir, sandbox) -> None:
    row = verify_candidate((PROGRAMS / "fn_c.py").read_text(), dataset(datasets_dir, "fn_c"), sandbox).to_row()
    assert set(row) == VERIFY_COLUMNS
    assert VERIFY_COLUMNS.issubset(ATTEMPT_SCHEMA.names)
    schema = pa.schema([ATTEMPT_SCHEMA.field(name) for name in row])
    table = pa.Table.from_pylist([row], schema=schema)
    assert table.column("status").to_pylist() == ["ok"] and table.column("test_acc").to_pylist() == [1.0]


# ---- the command line ------------------------------------------------------------------------------------


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from llm_erm.cli import main

    monkeypatch.setattr(sys, "argv", ["llm-erm", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_scores_a_program_file(tmp_path) -> None:
    args = [LLM_ERM, "verify", str(PROGRAMS / "fn_b.py"), "--function", "fn_b", "--length", "20",
            "--test-size", "400", "--datasets-dir", str(tmp_path / "ds")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    verdict = json.loads(done.stdout)
    assert {"status", "train_acc", "val_acc", "test_acc", "sandbox"} <= set(verdict)
    assert (verdict["status"], verdict["val_acc"], verdict["test_acc"]) == ("ok", 1.0, 1.0)
    assert verdict["target"] == "fn_b" and Path(verdict["dataset_path"]).is_dir()


def test_cli_takes_a_raw_model_answer_and_reuses_the_dataset(tmp_path, monkeypatch, capsys) -> None:
    answer = tmp_path / "answer.txt"
    answer.write_text('<think>...</think>\n{"code": "def f(x):\n    return 1 if x == x[::-1] else 0\n"}\n')
    common = ["--function", "fn_g", "--length", "20", "--test-size", "200", "--datasets-dir", str(tmp_path / "ds")]
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(answer), *common, "--json")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1  # --json: one compact line
    first = json.loads(out)
    assert first["status"] == "ok" and first["test_acc"] == 1.0 and "building" in err
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(answer), *common)
    assert code == 0 and "building" not in err
    assert json.loads(out)["dataset_id"] == first["dataset_id"]


def test_cli_exits_non_zero_when_the_program_did_not_run_cleanly(tmp_path, monkeypatch, capsys) -> None:
    common = ["--function", "fn_a", "--length", "20", "--test-size", "200", "--datasets-dir", str(tmp_path / "ds")]
    for text, status in (("def f(x)\n    return 1\n", "syntax_error"), ("def f(x):\n    while True:\n        pass\n",
                         "timeout"), ("def f(x):\n    return int(x[0]) / 0\n", "runtime_errors")):
        program = tmp_path / f"{status}.py"
        program.write_text(text)
        code, out, err = run_cli(monkeypatch, capsys, "verify", str(program), *common, "--json")
        assert code == 1, err
        assert json.loads(out)["status"] == status  # the verdict is printed all the same
    code, out, _ = run_cli(monkeypatch, capsys, "verify", str(tmp_path / "timeout.py"), *common, "--json")
    assert (code, json.loads(out)["limit_split"]) == (1, "val")


def test_cli_candidate_timeout_and_sandbox_mode(tmp_path, monkeypatch, capsys) -> None:
    """--candidate-timeout is CPU seconds per input: 0.02 s per input fails at 0.001 and passes at 0.5;
    --sandbox rlimit runs (with a warning on every run) and is recorded in the verdict."""
    program = tmp_path / "slow.py"
    program.write_text("import time\n\ndef f(x):\n    end = time.process_time() + 0.02\n"
                       "    while time.process_time() < end:\n        pass\n    return x.count('1') % 2\n")
    common = ["--function", "fn_a", "--length", "20", "--test-size", "20", "--train-size", "20", "--val-size", "100",
              "--datasets-dir", str(tmp_path / "ds"), "--json"]
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(program), *common, "--candidate-timeout", "0.001")
    assert (code, json.loads(out)["status"]) == (1, "timeout")
    code, out, err = run_cli(monkeypatch, capsys, "verify", str(program), *common, "--candidate-timeout", "0.5",
                             "--sandbox", "rlimit")
    verdict = json.loads(out)
    assert (code, verdict["status"], verdict["test_acc"], verdict["sandbox"]) == (0, "ok", 1.0, "rlimit")
    assert "warning" in err and "rlimit" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.py", "--function", "fn_a", "--length", "20"], "cannot read the program file"),
        (["PROGRAM", "--function", "fn_zz", "--length", "20"], "unknown target 'fn_zz'"),
        (["PROGRAM", "--function", "fn_h", "--length", "30"], "divisible by 4"),
        (["PROGRAM", "--function", "fn_a", "--length", "20", "--test-size", "7"], "--test-size"),
        (["PROGRAM", "--function", "fn_a", "--length", "20", "--candidate-timeout", "0"], "--candidate-timeout"),
        (["PROGRAM", "--function", "fn_a", "--length", "20", "--sandbox", "docker"], "--sandbox"),
    ],
)
def test_cli_refuses_bad_input_before_writing_anything(tmp_path, monkeypatch, capsys, args, message) -> None:
    args = [str(PROGRAMS / "fn_a.py") if a == "PROGRAM" else str(tmp_path / a) if a == "missing.py" else a
            for a in args]
    code, out, err = run_cli(monkeypatch, capsys, "verify", *args, "--datasets-dir", str(tmp_path / "ds"))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ds").exists()

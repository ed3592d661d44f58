"""analyze_run's outputs: tables as Parquet and CSV, PNGs of the fixed size, the HTML report, the CLI."""

import base64
import re

import pandas as pd
import pyarrow.parquet as pq
import pytest
from analysis_helpers import synthetic_run
from PIL import Image
from typer.testing import CliRunner

from llm_erm.analysis import analyze_run
from llm_erm.analysis.plots import PNG_SIZE
from llm_erm.cli import app
from llm_erm.errors import UsageError

TABLES = ["cells", "trials", "status", "pass_at_k", "progression", "leakage_findings", "leakage_datasets",
          "methods", "methods_wide", "paper_table"]
PLOTS = ["accuracy_vs_length", "attempt_progression", "pass_at_k", "status_breakdown", "cost_per_cell"]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    run_dir = synthetic_run(root / "results" / "run-1", root / "datasets")
    return analyze_run(run_dir)


def test_every_table_is_written_as_parquet_and_csv_with_the_same_content(analysed):
    assert sorted(analysed.tables) == sorted(TABLES)
    for name, path in analysed.tables.items():
        parquet = pd.read_parquet(path)
        csv = pd.read_csv(path.with_suffix(".csv"))
        assert list(parquet.columns) == list(csv.columns), name
        assert len(parquet) == len(csv), name
    cells = pd.read_parquet(analysed.tables["cells"])
    assert len(cells) == 4 and cells["test_mean"].notna().all()
    pd.testing.assert_frame_equal(cells, analysed.cells, check_dtype=False)
    summary = pq.read_table(analysed.summary_path).to_pandas()
    assert summary[["target", "length", "test_mean"]].equals(analysed.cells[["target", "length", "test_mean"]])


def test_plots_are_non_empty_pngs_of_the_fixed_size(analysed):
    assert sorted(analysed.plots) == sorted(PLOTS)
    for name, path in analysed.plots.items():
        with Image.open(path) as image:
            assert image.format == "PNG", name
            assert image.size == PNG_SIZE == (1200, 800), name
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20, f"{name} looks blank"


def test_the_html_report_is_self_contained(analysed):
    html = analysed.report_path.read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(sources) == len(PLOTS)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:|file:)', html)  # nothing fetched
    assert "sandbox mode</th><td>bwrap" in html
    assert "&quot;attempts&quot;: 3" in html  # the run's config
    assert "leakage check passed" in html
    assert "fn_b (name_fn_b)" in html


def test_headline_markdown_has_the_table_and_a_link_to_the_report(analysed):
    headline = analysed.headline
    assert "no leakage found" in headline
    assert f"`{analysed.report_path.resolve()}`" in headline and "file://" not in headline
    table_rows = [line for line in headline.splitlines() if line.startswith("| fn_")]
    assert len(table_rows) == 4
    assert analysed.selection_mismatches == 0


def test_cli_analyze_re_analyses_and_replaces_the_report(analysed):
    stale = analysed.report_path.parent / "stale.txt"
    stale.write_text("from an older analysis")
    result = CliRunner().invoke(
        app, ["analyze", "--run-id", "run-1", "--results-dir", str(analysed.run_dir.parent)]
    )
    assert result.exit_code == 0, result.output
    assert "leakage check passed" in result.output
    assert f"{analysed.cells['test_mean'].iloc[0]:.3f}" in result.output
    assert analysed.report_path.exists() and not stale.exists()
    assert not list(analysed.run_dir.glob(".report.*"))


def test_cli_compare_of_a_run_with_itself_is_clean(analysed):
    runner = CliRunner()
    results = str(analysed.run_dir.parent)
    result = runner.invoke(app, ["compare", "run-1", "run-1", "--results-dir", results])
    assert result.exit_code == 0, result.output
    assert "4 cell(s) compared, 0 regression(s)" in result.output


def test_cli_refuses_an_unknown_run_before_writing(tmp_path, analysed):
    runner = CliRunner()
    results = str(analysed.run_dir.parent)
    result = runner.invoke(app, ["analyze", "--run-id", "nope", "--results-dir", results])
    assert isinstance(result.exception, UsageError)
    assert "no run 'nope'" in str(result.exception) and "run-1" in str(result.exception)
    assert not (analysed.run_dir.parent / "nope").exists()
    result = runner.invoke(app, ["compare", "run-1", "nope", "--results-dir", results])
    assert isinstance(result.exception, UsageError)
    with pytest.raises(UsageError, match="no attempts"):
        analyze_run(tmp_path / "empty-run")
    assert not (tmp_path / "empty-run").exists()


def test_a_one_trial_cell_shows_no_spread(analysed):
    from llm_erm.analysis.report import headline_table

    one = analysed.cells.head(1).assign(trials_scored=1, trials=1, test_std=0.0)
    assert headline_table(one)["test std"].tolist() == ["—"]  # undefined, as the legend says, not 0.000
    several = analysed.cells.head(1).assign(trials_scored=3, trials=3, test_std=0.05)
    assert headline_table(several)["test std"].tolist() == ["0.050"]

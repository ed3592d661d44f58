"""`llm-erm analyze` and `llm-erm compare`: the analysis of one run, and one run against a baseline.

Exit codes (so scripts and CI can act on them): 0 clean; 1 the run leaked (analyze) or regressed (compare);
2 bad input, nothing written.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from llm_erm.cli.options import MultiValueCommand
from llm_erm.config import default
from llm_erm.errors import UsageError

ResultsDir = Annotated[str, typer.Option("--results-dir", help="Where runs are stored (a path or s3://...).")]
DatasetsDir = Annotated[Path, typer.Option(
    "--datasets-dir", help="Where the run's datasets are (a moved run's are looked for here, then at the "
    "recorded path and beside the results directory; a missing one is rebuilt here).")]


def _run_dir(results_dir: str, run_id: str, option: str = "--run-id") -> Path:
    """The directory of a run that has attempts, or a UsageError naming the runs that exist."""
    from llm_erm.results import storage
    from llm_erm.results.runs import run_folder

    run_dir = run_folder(results_dir, run_id, option)
    if "attempts" not in storage.names(run_dir):
        location = storage.resolve(results_dir)
        known = [name for name in storage.names(location) if "attempts" in storage.names(location / name)]
        hint = f"known runs: {', '.join(sorted(known))}" if known else "pass --results-dir where the runs are"
        raise UsageError(f"no run '{run_id}' with attempts under {results_dir}/: {hint}")
    return run_dir


def _print_table(frame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column), justify="left" if column == frame.columns[0] else "right")
    for row in frame.itertuples(index=False):
        table.add_row(*("—" if value != value else str(value) for value in row))
    console = Console()
    console.width = max(console.width, 120)  # piped output defaults to 80 columns: too narrow for the table
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def analyze(
        run_id: Annotated[str, typer.Option("--run-id", help="The run to analyse (a directory under --results-dir).")],
        results_dir: ResultsDir = default("results_dir"),
        datasets_dir: DatasetsDir = Path(default("datasets_dir")),
    ) -> None:
        """Leakage checks, statistics, tables, plots and the HTML report of a run.

        Writes results/<run_id>/summary.parquet and results/<run_id>/report/: report.html, the PNG plots and every table as Parquet and CSV. Exits 1 when the leakage check fails.

        Example: llm-erm analyze --run-id 3f9c2a1b --results-dir results
        """
        run_dir = _run_dir(results_dir, run_id)
        from llm_erm.analysis import analyze_run
        from llm_erm.results.runs import check_writable

        check_writable(run_dir, "--results-dir")  # the report is written into the run
        from llm_erm.analysis.report import headline_table

        result = analyze_run(run_dir, datasets_dir=datasets_dir)
        terminal_columns = ["L", "trials", "test acc (95% CI)", "val acc", "val-test gap", "early stops",
                            "ok share", "cost"]
        headline = headline_table(result.cells)
        first = ["method", "target"] if "method" in headline else ["target"]
        _print_table(headline[terminal_columns].assign(target=result.cells["target"],
                                                       **({"method": headline["method"]} if "method" in headline
                                                          else {}))[[*first, *terminal_columns]],
                     f"run {result.run_id}")
        for finding in result.leakage.leaks:
            typer.echo(f"leak: {finding.kind} in {finding.dataset_path}: {finding.detail}")
        warnings = Counter(f.kind for f in result.leakage.findings if f.severity == "warning")
        for kind, count in sorted(warnings.items()):
            typer.echo(f"warning: {count} x {kind} (listed in the report)")
        for note in result.notes:
            typer.echo(note)
        typer.echo(f"{result.leakage.verdict()}\nreport: {result.report_path}")
        if not result.ok:
            raise typer.Exit(1)

    @app.command(cls=MultiValueCommand)
    def generalize(
        run_id: Annotated[str, typer.Option("--run-id", help="The run whose selected programs to score.")],
        lengths: Annotated[list[str], typer.Option("--lengths", help="Lengths to score them at, e.g. 10 20 50 100.")],
        results_dir: ResultsDir = default("results_dir"),
        datasets_dir: DatasetsDir = Path(default("datasets_dir")),
        test_size: Annotated[int, typer.Option("--test-size", help="Test inputs per length (even).")] = 2000,
        sandbox: Annotated[str | None, typer.Option(
            "--sandbox", help="bwrap | rlimit | auto (default: the run's)")] = None,
        candidate_timeout: Annotated[float | None, typer.Option(
            "--candidate-timeout", help="CPU seconds a program may spend per input (default: the run's).")] = None,
        candidate_memory_mb: Annotated[int | None, typer.Option(
            "--candidate-memory-mb", help="Memory limit of one program, in MB (default: the run's).")] = None,
    ) -> None:
        """Score a run's selected erm programs on fresh test sets at other lengths (length generalisation).

        Writes results/<run_id>/generalization.parquet and .csv. How each target extends to another length is
        in llm_erm/datasets/README.md (parity_rand keeps the source length's positions).

        Example: llm-erm generalize --run-id grid-3f9c2a1b0d4e --lengths 10 20 25 30 50 100
        """
        from llm_erm.analysis.generalize import generalize_run
        from llm_erm.datasets.batch import split_values

        try:
            values = [int(v) for v in split_values(lengths)]
        except ValueError:
            raise UsageError(f"--lengths takes integers, got {' '.join(lengths)!r}") from None
        if test_size < 2 or test_size % 2:
            raise UsageError(f"--test-size must be a positive even number, got {test_size}")
        table = generalize_run(_run_dir(results_dir, run_id), values, datasets_dir=datasets_dir, test_size=test_size,
                               sandbox_mode=sandbox, time_per_input_s=candidate_timeout,
                               memory_mb=candidate_memory_mb)  # None: the run's recorded setting
        wide = table.pivot_table(index=["method_label", "target", "source_length", "trial"], columns="length",
                                 values="test_acc", aggfunc="first").round(3).reset_index()
        wide.columns = [str(c) if not isinstance(c, int) else f"L{c}" for c in wide.columns]
        _print_table(wide, f"run {run_id}: selected programs' test accuracy by length")
        typer.echo(f"written: {_run_dir(results_dir, run_id) / 'generalization.parquet'}")

    @app.command()
    def compare(
        baseline: Annotated[str, typer.Argument(help="Run id of the baseline (e.g. last night's run).")],
        candidate: Annotated[str, typer.Argument(help="Run id of the run to check against it.")],
        results_dir: ResultsDir = default("results_dir"),
    ) -> None:
        """Compare two runs cell by cell and list the regressions.

        A cell regresses when its mean selected test accuracy dropped by more than max(2 x combined standard error, 0.02), when its share of ok attempts dropped by more than max(2 x combined binomial standard error, 0.10), or when it lost every scored trial. Exits 1 when there is a regression.

        Example: llm-erm compare nightly-2026-01-01 nightly-2026-01-02
        """
        from llm_erm.results.runs import run_folder

        for option, name in (("BASELINE_RUN", baseline), ("CANDIDATE_RUN", candidate)):
            run_folder(results_dir, name, option)  # both plain names, before either is looked for
        baseline_dir = _run_dir(results_dir, baseline, "BASELINE_RUN")
        candidate_dir = _run_dir(results_dir, candidate, "CANDIDATE_RUN")
        from llm_erm.analysis.compare import cell_name, compare_runs

        comparison = compare_runs(baseline_dir, candidate_dir)
        if len(comparison.table):
            shown = comparison.table[
                ["method_label", "target", "length", "baseline_test_mean", "candidate_test_mean", "test_delta", "test_threshold",
                 "baseline_ok_share", "candidate_ok_share", "reasons"]
            ].round(3)
            _print_table(shown, f"{candidate} vs baseline {baseline}")
        for name, cells in (("baseline", comparison.only_in_baseline), ("candidate", comparison.only_in_candidate)):
            if cells:
                typer.echo(f"only in the {name}: " + ", ".join(cell_name(*cell) for cell in cells))
        for regression in comparison.regressions:
            typer.echo(f"REGRESSION {regression.cell} {regression.kind}: {regression.detail}")
        typer.echo(f"{len(comparison.table)} cell(s) compared, {len(comparison.regressions)} regression(s)")
        if comparison.regressions:
            raise typer.Exit(1)

"""Analysis of a finished (or partial) run: leakage checks, statistics, tables, plots and the HTML report.

Plain Python over the Parquet ledger; the `erm-analysis` flow and `llm-erm analyze` call `analyze_run`.

Outputs under results/<run_id>/ (a cell is (method label, target, length)):
    summary.parquet                 one row per cell (stats.summarize_cells)
    report/report.html              self-contained report (plots embedded)
    report/<table>.parquet|.csv     cells, trials, status, pass_at_k, progression, leakage_findings,
                                    leakage_datasets, methods (per method label and cell: the selected test
                                    accuracy's mean and CI, n_train), methods_wide (target x method label),
                                    paper_table (the paper's table regenerated, with its numbers beside ours:
                                    analysis/paper_table.py; also as paper_table.html)
    report/<plot>.png               accuracy_vs_length, attempt_progression, pass_at_k, status_breakdown,
                                    cost_per_cell, with several method labels accuracy_vs_samples, and once
                                    `llm-erm generalize` wrote generalization.parquet length_generalization (a plot
                                    with nothing to show is not drawn: the report says in words what is missing,
                                    AnalysisResult.missing_plots holds the sentence)
With several method labels the report opens with the methods table (target x method label). Attempt progression,
pass@k and the status breakdown describe the search (erm) labels, the cost plot the labels that call a model.
The report directory is built beside the old one and swapped in, so readers never see half of it.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llm_erm.analysis import methods, plots
from llm_erm.analysis.leakage import LeakageReport, check_leakage
from llm_erm.analysis.report import headline_markdown, write_html_report
from llm_erm.analysis.stats import (
    CELL_KEYS,
    pass_at_k_table,
    progression,
    select_attempts,
    summarize_cells,
    summarize_trials,
    with_methods,
)
from llm_erm.errors import UsageError
from llm_erm.results import ledger, storage
from llm_erm.results.schema import STATUSES

REPORT_FILE = "report.html"


@dataclass
class AnalysisResult:
    run_id: str
    run_dir: Path
    leakage: LeakageReport
    cells: pd.DataFrame  # the summary table, one row per cell
    tables: dict[str, Path] = field(default_factory=dict)  # name -> Parquet file (a CSV sits beside it)
    plots: dict[str, Path] = field(default_factory=dict)  # name -> PNG
    missing_plots: dict[str, str] = field(default_factory=dict)  # name -> why it was not drawn, in words
    report_path: Path | None = None
    summary_path: Path | None = None
    headline: str = ""  # markdown: verdict, headline table, link to the report
    selection_mismatches: int = 0  # trials whose ledger `selected` row differs from the selection rule
    notes: list[str] = field(default_factory=list)  # datasets rebuilt or not found (llm_erm.analysis.locate)

    @property
    def ok(self) -> bool:
        """False when the run leaked (see leakage.py): such a run is marked failed."""
        return self.leakage.ok


def _write_table(frame: pd.DataFrame, directory: Path, name: str) -> Path:
    path = directory / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    frame.to_csv(directory / f"{name}.csv", index=False)
    return path


def _method_tables(trials: pd.DataFrame, attempts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The comparison: `methods` (one row per method label and cell, the selected test accuracy's mean and 95% CI
    over trials, n_train), `methods_wide` (target x method label, the mean) and `paper_table` (the paper's shape,
    its numbers beside ours: paper_table.py)."""
    from llm_erm.analysis.paper_table import paper_table

    long = methods.method_cells(trials, attempts)
    wide = long.pivot_table(index=["target", "length"], columns="method_label", values="test_mean",
                            aggfunc="first").reset_index()
    wide.columns = [str(c) for c in wide.columns]
    return {"methods": long, "methods_wide": wide, "paper_table": paper_table(trials, attempts)}


def _selection_mismatches(attempts: pd.DataFrame) -> int:
    attempts = with_methods(attempts)
    recorded = attempts["selected"].eq(True)
    recomputed = select_attempts(attempts)["selected"]
    differs = attempts.loc[recorded != recomputed, CELL_KEYS + ["trial"]]
    return len(differs.drop_duplicates())


def _swap_in(new_dir: Path, final_dir: Path) -> None:
    if storage.is_remote(final_dir):  # no rename on an object store: each file one PUT, stale ones removed
        storage.publish_dir(new_dir, final_dir)
        shutil.rmtree(new_dir, ignore_errors=True)
        return
    old = final_dir.with_name(final_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final_dir.exists():
        final_dir.rename(old)
    new_dir.rename(final_dir)
    shutil.rmtree(old, ignore_errors=True)


def analyze_run(run_dir: Path, datasets_dir: Path | str | None = None) -> AnalysisResult:
    """Analyse the run in `run_dir` and write its summary, tables, plots and report (module doc).

    The run's datasets are looked for where it recorded them, in `datasets_dir` and beside its results
    directory, and rebuilt into `datasets_dir` when missing (llm_erm.analysis.locate): a run is relocatable."""
    from llm_erm.analysis.locate import locate_datasets

    run_dir = run_dir if storage.is_remote(run_dir) else Path(run_dir)
    attempts = with_methods(ledger.read_attempts(run_dir).to_pandas())
    if attempts.empty:
        raise UsageError(
            f"no attempts under {run_dir / ledger.ATTEMPTS_DIR}: run the grid first, or pass the right run id"
        )
    located = locate_datasets(attempts, run_dir, Path(datasets_dir) if datasets_dir is not None else None)
    attempts = located.attempts
    manifest = ledger.read_manifest(run_dir)
    run_id = str(attempts["run_id"].dropna().iloc[0]) if attempts["run_id"].notna().any() else run_dir.name

    cells = summarize_cells(attempts)
    trials = summarize_trials(attempts)
    max_k = int(attempts["attempt"].max())
    curves = pass_at_k_table(trials, max_k)
    progress = progression(attempts)
    status = cells[CELL_KEYS + [f"n_{s}" for s in STATUSES] + [f"share_{s}" for s in STATUSES]]
    leakage = check_leakage(attempts)
    result = AnalysisResult(run_id, run_dir, leakage, cells)
    result.notes = located.notes()
    result.selection_mismatches = _selection_mismatches(attempts)
    all_labels = methods.labels(attempts)
    several = len(all_labels) > 1
    search = methods.search_labels(attempts)
    searched = cells[cells["method_label"].isin(search)] if search else cells
    priced = cells[cells["method"].isin(methods.MODEL_METHODS)]

    report_dir = run_dir / ledger.REPORT_DIR
    # staged beside the run (one rename swaps it in), or in a local temp folder for an object store
    staging = Path(tempfile.mkdtemp(dir=None if storage.is_remote(run_dir) else run_dir, prefix=".report."))
    staging.chmod(0o755)  # mkdtemp makes it private; the report is for everyone who can read the run
    figures: list[plots.Plot] = []
    try:
        for name, frame in {
            "cells": cells,
            "trials": trials,
            "status": status,
            "pass_at_k": curves,
            "progression": progress,
            "leakage_findings": leakage.findings_frame(),
            "leakage_datasets": leakage.datasets,
            **_method_tables(trials, attempts),
        }.items():
            result.tables[name] = report_dir / _write_table(frame, staging, name).name
        from llm_erm.analysis.paper_table import paper_table_html

        table = pd.read_parquet(staging / "paper_table.parquet")
        (staging / "paper_table.html").write_text(paper_table_html(table), encoding="utf-8")
        figures = [plots.draw_accuracy_vs_length(cells)]
        if several:
            figures.append(plots.draw_accuracy_vs_samples(cells, methods.sample_size_series(cells)))
        from llm_erm.analysis.generalize import GENERALIZATION_FILE  # (it imports the datasets package)

        generalized = run_dir / GENERALIZATION_FILE  # written by `llm-erm generalize`
        if generalized.exists():
            figures.append(plots.draw_generalization(ledger.read_table(generalized).to_pandas()))
        figures += [
            plots.draw_progression(progress[progress["method_label"].isin(search)]),
            plots.draw_pass_at_k(curves[curves["method_label"].isin(search)]),
            plots.draw_status_breakdown(searched),
            plots.draw_cost(priced),
        ]
        drawn = {plot.name: plots.save(plot, staging) for plot in figures}
        sandbox_rows = sorted(attempts["sandbox"].dropna().unique().tolist())
        facts = {
            "sandbox mode": manifest.get("sandbox") or ", ".join(sandbox_rows) or "unknown",
            "sandbox modes recorded in attempts": ", ".join(sandbox_rows) or "—",
            "proposers": ", ".join(sorted(attempts["proposer"].dropna().unique().tolist())) or "—",
            "models": ", ".join(sorted(attempts["model"].dropna().unique().tolist())) or "—",
            "method labels": ", ".join(all_labels),
            "cells / trials / attempts": f"{len(cells)} / {len(trials)} / {len(attempts)}",
            "cost of priced attempts (USD)": f"{cells['cost_usd'].sum():.2f}",
            "unpriced attempts": int(priced["unpriced_attempts"].sum()),
            "candidates scanned for hard-coded inputs": leakage.candidates_checked,
            "trials whose recorded selection differs from the rule": result.selection_mismatches,
        }
        write_html_report(
            staging / REPORT_FILE,
            run_id=run_id,
            facts=facts,
            manifest=manifest,
            cells=cells,
            leakage=leakage,
            plots=[(plot, drawn[plot.name]) for plot in figures],
            several_methods=several,
        )
        _swap_in(staging, report_dir)
    except BaseException:
        for plot in figures:
            plots.close(plot)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.plots = {name: report_dir / path.name for name, path in drawn.items() if path is not None}
    result.missing_plots = {plot.name: plot.caption for plot in figures if not plot.drawn}
    result.report_path = report_dir / REPORT_FILE
    result.summary_path = run_dir / ledger.SUMMARY_FILE
    ledger.write_frame(result.summary_path, cells)
    result.headline = headline_markdown(run_id, cells, leakage, result.report_path)
    return result

"""The report's figures stay legible at 4 cells and at 60, and a figure with nothing to show is a sentence instead.

Legibility is measured on the drawn figures: tick labels of one axis never overlap, panel titles never overlap,
every text lies inside the figure, attempt and k axes have integer ticks, and no line is drawn through one point.
"""

import itertools
import random

import matplotlib
import pandas as pd
import pytest
from analysis_helpers import attempt_row, synthetic_run
from viewer_helpers import multi_method_run

from llm_erm.analysis import analyze_run, methods, plots
from llm_erm.analysis.stats import pass_at_k_table, progression, summarize_cells, summarize_trials
from llm_erm.results import ledger

TWELVE = [f"fn_{c}" for c in "abcdefghijkl"]
FIVE_LENGTHS = (20, 25, 30, 50, 100)


def ledger_frame(targets, lengths, trials=5, attempts=5, seed=0, priced=True):
    """Attempt rows as the ledger reads them back (no dataset stores: the figures need only the tables)."""
    rng = random.Random(seed)
    rows = []
    for target, length, trial in itertools.product(targets, lengths, range(1, trials + 1)):
        for attempt in range(1, attempts + 1):
            status = rng.choice(["ok", "ok", "ok", "syntax_error", "timeout"])
            val = None if status == "syntax_error" else round(rng.uniform(0.5, 1.0), 2)
            rows.append(attempt_row(target, length, trial, attempt, val, None if val is None else val - 0.01,
                                    status, cost_usd=0.02 if priced else None))
            if val == 1.0:
                break
    return ledger.attempts_table(rows).to_pandas()


def tables(frame):
    cells = summarize_cells(frame)
    trials = summarize_trials(frame)
    return cells, progression(frame), pass_at_k_table(trials, int(frame["attempt"].max()))


def all_plots(frame):
    cells, progress, curves = tables(frame)
    return [plots.draw_accuracy_vs_length(cells), plots.draw_progression(progress), plots.draw_pass_at_k(curves),
            plots.draw_status_breakdown(cells), plots.draw_cost(cells)]


def overlapping(extents):
    return [(a, b) for a, b in itertools.combinations(extents, 2) if a.overlaps(b)]


def legibility_problems(fig) -> list[str]:
    """Overlapping tick labels or panel titles, and texts outside the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    problems = []
    titles = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            locs = axis.get_majorticklocs()
            shown = zip(locs, axis.get_major_ticks(len(locs)), strict=True)  # drawn: the ticks inside the view
            labels = [tick.label1 for loc, tick in shown if low - 1e-9 <= loc <= high + 1e-9
                      and tick.label1.get_visible() and tick.label1.get_text()]
            extents = [t.get_window_extent(renderer) for t in labels]
            for a, b in overlapping(extents):
                problems.append(f"tick labels overlap in {ax.get_title()!r}: {a} {b}")
            for t, e in zip(labels, extents, strict=True):
                if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
                    problems.append(f"tick label {t.get_text()!r} outside the figure")
        if ax.get_title():
            titles.append(ax.title.get_window_extent(renderer))
    problems += [f"panel titles overlap: {a} {b}" for a, b in overlapping(titles)]
    for legend in fig.legends:
        extent = legend.get_window_extent(renderer)
        if extent.y0 < box.y0 - 1 or extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1:
            problems.append("legend outside the figure")
        for ax in fig.axes:
            if ax.get_visible() and extent.overlaps(ax.get_window_extent(renderer)):
                problems.append(f"legend covers the panel {ax.get_title()!r}")
    return problems


def single_point_lines(fig) -> list[str]:
    return [f"{ax.get_title()!r}: a line through {len(line.get_xdata())} point"
            for ax in fig.axes for line in ax.get_lines()
            if line.get_linestyle() not in ("None", "none", "", " ") and len(line.get_xdata()) < 2]


@pytest.mark.parametrize("targets, lengths", [(("fn_a", "fn_b"), (20, 24)), (TWELVE, FIVE_LENGTHS)],
                         ids=["4 cells", "60 cells"])
def test_every_figure_is_legible_at_4_and_at_60_cells(targets, lengths):
    drawn = all_plots(ledger_frame(targets, lengths))
    assert all(p.drawn for p in drawn), [p.caption for p in drawn if not p.drawn]
    for plot in drawn:
        assert plot.figure.get_size_inches().tolist() == list(plots.FIGSIZE_IN)
        assert legibility_problems(plot.figure) == [], plot.name
        assert single_point_lines(plot.figure) == [], plot.name
        assert len(plot.caption.split()) >= 15, f"{plot.name}: a caption says what the figure shows"
        plots.close(plot)


def test_attempt_and_k_axes_have_integer_ticks_only():
    cells, progress, curves = tables(ledger_frame(("fn_a", "fn_b", "fn_c"), (20,), attempts=3))
    for plot in (plots.draw_progression(progress), plots.draw_pass_at_k(curves)):
        for ax in plot.figure.axes:
            if not ax.get_visible():
                continue
            low, high = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks), (plot.name, ticks)
            assert low > 0 and high < 4  # the axis spans the attempts made, not 0.945 ... 1.050
        plots.close(plot)


def test_one_panel_per_target_keeps_14_targets_apart():
    targets = [f"fn_{c}" for c in "abcdefghijklmn"]
    plot = plots.draw_accuracy_vs_length(tables(ledger_frame(targets, (20, 30), trials=2, attempts=2))[0])
    panels = [ax for ax in plot.figure.axes if ax.get_visible()]
    assert sorted(ax.get_title().split()[0] for ax in panels) == sorted(targets)
    assert legibility_problems(plot.figure) == []
    plots.close(plot)
    styles = plots.series_styles([f"label-{i}" for i in range(20)])
    assert len({(s["color"], s["marker"]) for s in styles.values()}) == 20
    assert len({s["color"] for s in styles.values()}) == 20


def test_a_run_of_single_attempts_gets_sentences_not_dot_plots(tmp_path):
    result = analyze_run(synthetic_run(tmp_path / "results" / "run", tmp_path / "datasets", attempts=1))
    assert set(result.missing_plots) == {"attempt_progression", "pass_at_k"}
    assert "single attempt (k = 1)" in result.missing_plots["attempt_progression"]
    html = result.report_path.read_text()
    assert html.count("<img ") == len(result.plots) == 3
    assert 'data-plot="attempt_progression"' in html and "single attempt (k = 1)" in html
    assert not (result.report_path.parent / "attempt_progression.png").exists()


def test_nothing_priced_and_a_single_length_are_said_in_words(tmp_path):
    frame = ledger_frame(("fn_a", "fn_b"), (20,), trials=2, attempts=2, priced=False)
    cells, _, _ = tables(frame)
    cost = plots.draw_cost(cells)
    assert not cost.drawn and cost.caption.startswith("Nothing is priced")
    assert f"{int(cells['unpriced_attempts'].sum())} answered call(s)" in cost.caption
    length = plots.draw_accuracy_vs_length(cells)
    assert not length.drawn and "single length (L20)" in length.caption
    free = plots.draw_cost(cells.assign(cost_usd=0.0, unpriced_attempts=0))
    assert not free.drawn and "$0.00" in free.caption


def test_a_target_with_one_length_among_others_is_a_marker_not_a_line():
    frame = pd.concat([ledger_frame(("fn_a",), (20, 30)), ledger_frame(("fn_b",), (20,), seed=1)], ignore_index=True)
    plot = plots.draw_accuracy_vs_length(tables(frame)[0])
    assert plot.drawn and single_point_lines(plot.figure) == []
    plots.close(plot)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    run_dir = multi_method_run(root / "results" / "mm", root / "datasets", trials=3)
    return analyze_run(run_dir)


def test_a_multi_method_run_gets_the_methods_table_and_its_plots(multi):
    assert {"accuracy_vs_length", "accuracy_vs_samples"} <= set(multi.plots)
    cells = pd.read_parquet(multi.tables["cells"])
    assert sorted(cells["method_label"].unique()) == ["erm", "sgd-n1000", "sgd-n200", "xgboost"]
    # a baseline's cell is the mean of its trials' single rows
    rows = pd.concat(pd.read_parquet(p) for p in (multi.run_dir / "attempts" / "xgboost" / "fn_a" / "L20").glob("*.parquet"))
    cell = cells.set_index(["method_label", "target", "length"]).loc[("xgboost", "fn_a", 20)]
    assert cell["test_mean"] == pytest.approx(rows["test_acc"].mean())
    assert cell["trials_scored"] == 3 and cell["n_train"] == 200
    html = multi.report_path.read_text()
    assert "<h2>Methods</h2>" in html and "sgd-n1000</th>" in html
    assert f"{cell['test_mean']:.3f} ± " in html
    assert "search label(s) <code>erm</code>" in html
    # the per-cell ERM sections describe the erm label: its 3 attempts per trial, never a baseline's row
    per_cell = html.split("<h2>Results per cell</h2>")[1].split("<h2>")[0]
    assert "xgboost" not in per_cell and "sgd-n200" not in per_cell
    progression = pd.read_parquet(multi.tables["progression"])
    assert set(progression["method_label"]) == set(cells["method_label"])  # the tables keep every label


def test_sample_size_curves_join_one_methods_labels_only():
    cells = pd.DataFrame([
        {"method_label": "sgd-n200", "method": "sgd", "n_train": 200},
        {"method_label": "sgd-n1000", "method": "sgd", "n_train": 1000},
        {"method_label": "erm-gpt-5", "method": "erm", "n_train": 200},
        {"method_label": "erm-gpt-5-mini", "method": "erm", "n_train": 200},
        {"method_label": "icl", "method": "icl", "n_train": None},
    ])
    assert methods.sample_size_series(cells) == {
        "erm-gpt-5": ["erm-gpt-5"], "erm-gpt-5-mini": ["erm-gpt-5-mini"], "sgd": ["sgd-n1000", "sgd-n200"],
    }


def test_the_sample_size_plot_draws_a_sweep_and_says_when_there_is_none(multi):
    cells = pd.read_parquet(multi.tables["cells"])
    drawn = plots.draw_accuracy_vs_samples(cells, methods.sample_size_series(cells))
    lines = [line for ax in drawn.figure.axes for line in ax.get_lines()
             if line.get_linestyle() == "-" and line.get_gid() != "chance"]
    assert lines and all(sorted(line.get_xdata()) == [200.0, 1000.0] for line in lines)  # only sgd is a curve
    assert legibility_problems(drawn.figure) == [] and single_point_lines(drawn.figure) == []
    plots.close(drawn)
    flat = cells[cells["method_label"] != "sgd-n1000"]
    missing = plots.draw_accuracy_vs_samples(flat, methods.sample_size_series(flat))
    assert not missing.drawn and "single sample size" in missing.caption
    unknown = plots.draw_accuracy_vs_samples(cells.assign(n_train=None), {})
    assert not unknown.drawn and "n_train" in unknown.caption


def test_two_erm_labels_are_never_selected_across():
    rows = [attempt_row("fn_a", 20, 1, 1, val, test) for val, test in ((0.9, 0.9), (0.6, 0.55))]
    frame = ledger.attempts_table(rows).to_pandas().assign(method="erm", method_label=["erm-a", "erm-b"])
    trials = summarize_trials(frame)
    assert dict(zip(trials["method_label"], trials["selected_test_acc"], strict=True)) == {"erm-a": 0.9, "erm-b": 0.55}


def test_matplotlib_runs_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_two_erm_labels_get_a_panel_each_and_labelled_bars():
    one = ledger_frame(("fn_a", "fn_b"), (20, 24), trials=2, attempts=3).assign(method="erm", method_label="erm-a")
    two = ledger_frame(("fn_a", "fn_b"), (20, 24), trials=2, attempts=3, seed=5).assign(method="erm", method_label="erm-b")
    frame = pd.concat([one, two], ignore_index=True)
    cells, progress, curves = tables(frame)
    for plot in (plots.draw_progression(progress), plots.draw_pass_at_k(curves)):
        titles = sorted(ax.get_title() for ax in plot.figure.axes if ax.get_visible())
        assert titles == ["erm-a · fn_a", "erm-a · fn_b", "erm-b · fn_a", "erm-b · fn_b"], plot.name
        assert legibility_problems(plot.figure) == []
        plots.close(plot)
    status = plots.draw_status_breakdown(cells)
    labels = [t.get_text() for ax in status.figure.axes for t in ax.get_yticklabels()]
    assert "erm-b fn_a L20" in labels and legibility_problems(status.figure) == []
    plots.close(status)


def generalization_table(lengths=(10, 20, 30, 50)):
    """What `llm-erm generalize` writes (analysis.generalize.COLUMNS), for two source lengths of two targets."""
    rows = []
    for target in ("fn_a", "fn_e"):
        for source in (20, 30):
            for trial in (1, 2):
                for length in lengths:
                    undefined = target == "fn_e" and length < 15
                    rows.append({"method_label": "erm", "target": target, "source_length": source, "trial": trial,
                                 "length": length, "test_acc": None if undefined else 1.0 - abs(length - source) / 100,
                                 "test_n": 0 if undefined else 2000, "status": "undefined" if undefined else "ok",
                                 "limit_split": None, "note": None, "code_sha256": "ab"})
    return pd.DataFrame(rows)


def test_a_generalised_run_gets_its_length_generalisation_figure(tmp_path):
    from llm_erm.analysis.generalize import COLUMNS, GENERALIZATION_FILE

    run_dir = synthetic_run(tmp_path / "results" / "run", tmp_path / "datasets")
    table = generalization_table()
    assert list(table.columns) == COLUMNS
    table.to_parquet(run_dir / GENERALIZATION_FILE, index=False)
    result = analyze_run(run_dir)
    assert "length_generalization" in result.plots
    html = result.report_path.read_text()
    assert 'data-plot="length_generalization"' in html and "4 score(s) are undefined" in html
    plot = plots.draw_generalization(table)
    assert sorted(ax.get_title() for ax in plot.figure.axes if ax.get_visible()) == ["fn_a", "fn_e"]
    assert legibility_problems(plot.figure) == [] and single_point_lines(plot.figure) == []
    plots.close(plot)
    one = plots.draw_generalization(generalization_table(lengths=(20,)))
    assert not one.drawn and "one length only" in one.caption

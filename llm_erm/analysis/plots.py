"""The report's figures (matplotlib, Agg backend, PNG), legible at 4 cells and at 60.

Every figure is FIGSIZE_IN at DPI, so every PNG is exactly PNG_SIZE pixels (no tight bounding box): tests and the
HTML layout rely on it. Each `draw_*` function takes the analysis tables and returns a Plot: the figure and a
caption that says what it shows, or no figure and a caption that says in words what is missing (a figure with
nothing to show is never drawn). The rules that keep figures legible:

- targets are small multiples (one panel each, titled), never 14 colours in one panel; lines inside a panel are
  lengths (an ordered colour map) or method labels (a 20-colour palette with a marker each);
- attempt and k axes have integer ticks; a curve is drawn only where its x has two or more values;
- bar charts of cells wrap into columns of at most BARS_PER_COLUMN rows, so labels never overlap;
- legends sit outside the panels, once per figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from llm_erm.results.schema import STATUSES  # noqa: E402

FIGSIZE_IN = (12.0, 8.0)
DPI = 100
PNG_SIZE = (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI))  # (width, height) in pixels
BARS_PER_COLUMN = 30
CHANCE = 0.5

# One colour per status, worst-looking last; "ok" green so a healthy run reads at a glance.
STATUS_COLOURS = dict(
    zip(
        STATUSES,
        ["#2ca02c", "#393b79", "#7f7f7f", "#ff7f0e", "#bcbd22", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#17becf", "#c7c7c7", "#8c6d31"],
        strict=True,
    )
)
# 20 colours that stay apart from each other (and from white); with a marker per entry, series never look alike.
SERIES_COLOURS = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
    "#000080", "#aa6e28", "#008080", "#f032e6", "#800000", "#3cb44b", "#4363d8", "#911eb4", "#9a6324", "#469990",
]
SERIES_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h"]


@dataclass
class Plot:
    name: str
    caption: str  # what the figure shows; without a figure, what is missing and why
    figure: Figure | None = None

    @property
    def drawn(self) -> bool:
        return self.figure is not None


def save(plot: Plot, directory: Path) -> Path | None:
    """Write the figure as `<name>.png` in `directory` (and close it); None when there is no figure."""
    if plot.figure is None:
        return None
    path = Path(directory) / f"{plot.name}.png"
    plot.figure.savefig(path, format="png", dpi=DPI)
    plt.close(plot.figure)
    return path


def close(plot: Plot) -> None:
    if plot.figure is not None:
        plt.close(plot.figure)


# -- layout helpers -------------------------------------------------------------------------------------------
def _figure(**subplots):
    return plt.subplots(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained", **subplots)


def panel_grid(n: int) -> tuple[int, int]:
    """(rows, columns) of small multiples for n panels in the fixed 3:2 figure."""
    if n <= 3:
        return 1, max(n, 1)
    columns = min(8, math.ceil(math.sqrt(n * 1.5)))
    return math.ceil(n / columns), columns


def _panels(n: int, sharey: bool = True):
    rows, columns = panel_grid(n)
    fig, axes = _figure(nrows=rows, ncols=columns, sharey=sharey, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    size = _panel_font(n)
    for ax in flat[:n]:
        ax.tick_params(labelsize=size)
    return fig, flat[:n], size


def _panel_font(n: int) -> float:
    return 9.0 if n <= 6 else 8.0 if n <= 12 else 7.0


def _target_order(targets) -> list[str]:
    """fn_b before fn_aa: shorter ids first, then alphabetical."""
    return sorted(dict.fromkeys(targets), key=lambda t: (len(str(t)), str(t)))


def _panel_title(ax, target: str, name, size: float) -> None:
    title = f"{target} ({name})" if isinstance(name, str) and name and name != target else str(target)
    ax.set_title(title, fontsize=size + 1)


def length_colours(lengths) -> dict[int, tuple]:
    """An ordered colour map over lengths (short = dark, long = light), the same in every panel."""
    values = sorted({int(v) for v in lengths})
    cmap = plt.get_cmap("viridis")
    span = max(len(values) - 1, 1)
    return {v: cmap(0.05 + 0.85 * i / span) for i, v in enumerate(values)}


def series_styles(names) -> dict[str, dict]:
    """Colour and marker per series (method label), distinct for up to 20 x 10 series."""
    return {
        name: {"color": SERIES_COLOURS[i % len(SERIES_COLOURS)],
               "marker": SERIES_MARKERS[(i + i // len(SERIES_COLOURS)) % len(SERIES_MARKERS)]}
        for i, name in enumerate(dict.fromkeys(names))
    }


def _legend(fig, handles, title: str | None = None) -> None:
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=9,
                   title=title, title_fontsize=9, frameon=False)


def _accuracy_axis(ax, size: float) -> None:
    ax.set_ylim(-0.02, 1.05)
    ax.axhline(CHANCE, color="lightgrey", linewidth=0.8, zorder=0, gid="chance")
    ax.yaxis.set_major_locator(MaxNLocator(5))


def _ci(frame: pd.DataFrame) -> list[np.ndarray]:
    low = (frame["test_mean"] - frame["test_ci_low"]).fillna(0).clip(lower=0).to_numpy()
    high = (frame["test_ci_high"] - frame["test_mean"]).fillna(0).clip(lower=0).to_numpy()
    return [low, high]


def _count(n: int) -> str:
    """200, 1k, 2.5k, 100k: short tick labels for sample sizes."""
    if n < 1000:
        return str(n)
    value = n / 1000
    return f"{value:g}k" if value < 1000 else f"{n / 1e6:g}M"


def _lengths_text(lengths) -> str:
    return ", ".join(f"L{v}" for v in sorted({int(x) for x in lengths}))


# -- accuracy against length ------------------------------------------------------------------------------------
def draw_accuracy_vs_length(cells: pd.DataFrame) -> Plot:
    """Selected test accuracy against length, one panel per target; one line per method label when the cells
    have several, else the test mean with its CI and the validation mean."""
    name = "accuracy_vs_length"
    frame = _labelled(cells)
    several = frame["method_label"].nunique() > 1
    frame = frame[frame["test_mean"].notna()]
    if frame.empty:
        return Plot(name, "No cell has a scored trial, so there is no accuracy to plot against length.")
    per_target = frame.groupby("target")["length"].nunique()
    if per_target.max() < 2:
        return Plot(name, "Every target was run at a single length "
                          f"({_lengths_text(frame['length'])}), so there is no accuracy-against-length curve: "
                          "the selected accuracies are in the table above.")
    targets = _target_order(frame["target"])
    fig, axes, size = _panels(len(targets))
    styles = series_styles(sorted(frame["method_label"].unique())) if several else {}
    for ax, target in zip(axes, targets, strict=True):
        mine = frame[frame["target"] == target].sort_values("length")
        lengths = sorted(int(v) for v in mine["length"].unique())
        # Lengths are the grid's levels (20, 25, 30, 50, 100): evenly spaced, so close ones never share a tick.
        position = {v: i for i, v in enumerate(lengths)}
        _panel_title(ax, target, mine["target_name"].iloc[0] if "target_name" in mine else None, size)
        if several:
            labels = sorted(mine["method_label"].unique())
            for i, label in enumerate(labels):  # dodge: labels side by side, so error bars do not hide each other
                curve = mine[mine["method_label"] == label]
                shift = (i - (len(labels) - 1) / 2) * 0.5 / max(len(labels), 1)
                x = curve["length"].map(position) + shift
                ax.errorbar(x, curve["test_mean"], yerr=_ci(curve), capsize=2, markersize=4,
                            linewidth=1.2, linestyle="-" if len(curve) > 1 else "none", **styles[label])
        else:
            x = mine["length"].map(position)
            ax.errorbar(x, mine["test_mean"], yerr=_ci(mine), marker="o", capsize=3,
                        linestyle="-" if len(mine) > 1 else "none", color=SERIES_COLOURS[0])
            ax.plot(x, mine["val_mean"], marker="x", color="grey", linestyle="--" if len(mine) > 1 else "none")
        _accuracy_axis(ax, size)
        ax.set_xticks(range(len(lengths)), [str(v) for v in lengths])
        ax.set_xlim(-0.5, len(lengths) - 0.5)
        ax.set_xlabel("length", fontsize=size)
    axes[0].set_ylabel("selected test accuracy", fontsize=size)
    if several:
        handles = [Line2D([], [], label=label, linewidth=1.2, **style) for label, style in styles.items()]
        _legend(fig, handles, "method")
        caption = ("Selected test accuracy against input length, one panel per target and one line per method "
                   "label: the mean over scored trials of each trial's result (ERM: the candidate with the best "
                   "validation accuracy; a baseline: its one model), with 95% CIs (Student t; none for one "
                   "trial). Labels are shifted sideways a little so their bars do not cover each other; the "
                   "grey line is chance (0.5).")
    else:
        _legend(fig, [Line2D([], [], color=SERIES_COLOURS[0], marker="o", label="test (mean, 95% CI)"),
                      Line2D([], [], color="grey", marker="x", linestyle="--", label="validation (mean)")])
        caption = ("Selected test accuracy against input length, one panel per target: the mean over scored "
                   "trials of the test accuracy of each trial's selected candidate, with its 95% CI (Student "
                   "t; none for one trial), and the mean selected validation accuracy (grey crosses). The grey "
                   "line is chance (0.5).")
    return Plot(name, caption, fig)


# -- progression and pass@k: curves over attempts ----------------------------------------------------------------
def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with a method_label column (erm where a table predates methods)."""
    return frame if "method_label" in frame else frame.assign(method_label="erm")


def _panel_keys(frame: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """The panel of each row: its target, or `label · target` when the frame has several method labels."""
    frame = _labelled(frame)
    if frame["method_label"].nunique() > 1:
        keys = frame["method_label"].astype(str) + " · " + frame["target"].astype(str)
        order = sorted(dict.fromkeys(keys), key=lambda k: (k.split(" · ")[0], len(k), k))
        return keys, order
    return frame["target"].astype(str), _target_order(frame["target"])


def _curves_by_length(frame: pd.DataFrame, x: str, columns: list[tuple[str, str]], xlabel: str, ylabel: str,
                      ylim: tuple[float, float], marker: str | None = "o"):
    """One panel per target (per label and target with several labels), one colour per length; `columns` =
    [(column, linestyle)]."""
    keys, panels = _panel_keys(frame)
    frame = frame.assign(_panel=keys)
    colours = length_colours(frame["length"])
    means = frame.groupby(["_panel", "length", x], sort=True)[[c for c, _ in columns]].mean().reset_index()
    fig, axes, size = _panels(len(panels))
    top = int(frame[x].max())
    for ax, target in zip(axes, panels, strict=True):
        mine = means[means["_panel"] == target]
        for length, curve in mine.groupby("length", sort=True):
            for column, style in columns:
                ax.plot(curve[x], curve[column], linestyle=style, marker=marker if style == "-" else None,
                        markersize=3, linewidth=1.3, color=colours[int(length)])
        ax.set_title(str(target), fontsize=size + 1)
        ax.set_ylim(*ylim)
        ax.set_xlim(0.7, top + 0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(top, 6)))
        ax.set_xlabel(xlabel, fontsize=size)
    axes[0].set_ylabel(ylabel, fontsize=size)
    handles = [Line2D([], [], color=c, marker=marker, markersize=4, label=f"L{v}") for v, c in colours.items()]
    return fig, handles


def draw_progression(progress: pd.DataFrame) -> Plot:
    """Test accuracy of the selection after a attempts (the best by validation among 1..a), per target and length."""
    name = "attempt_progression"
    top = int(progress["attempt"].max()) if len(progress) else 0
    if top < 2:
        return Plot(name, "Every trial made a single attempt (k = 1), so there is no progression over attempts to "
                          "draw: the selected accuracies are in the table above.")
    if progress["best_test_acc"].notna().sum() == 0:
        return Plot(name, "No attempt got a validation score, so no selection exists at any budget.")
    fig, handles = _curves_by_length(progress, "attempt", [("best_test_acc", "-")], "attempts (budget)",
                                     "test acc. of the selection", (-0.02, 1.05))
    _legend(fig, handles, "length")
    return Plot(name, "What a budget of a attempts would have returned: the test accuracy of the candidate "
                      "selected (best validation accuracy) among a trial's first a attempts, mean over trials, one "
                      "panel per target (per label and target with several erm labels) and one colour per length. "
                      "A trial that stopped early keeps its selection for larger budgets.", fig)


def draw_pass_at_k(curves: pd.DataFrame) -> Plot:
    """pass@k of "test >= 0.99" (solid) and "validation = 1.0" (dashed), per target and length."""
    name = "pass_at_k"
    top = int(curves["k"].max()) if len(curves) else 0
    if top < 2:
        return Plot(name, "pass@k needs trials of two or more attempts; every trial made one (k = 1), so pass@1 "
                          "(in the pass@k table below) is all there is.")
    values = curves[["val_pass_at_k", "test_pass_at_k"]]
    none_solved = not (values.fillna(0) > 0).any().any()
    fig, handles = _curves_by_length(curves, "k", [("test_pass_at_k", "-"), ("val_pass_at_k", "--")], "k",
                                     "pass@k", (-0.02, 1.05), marker=None)
    handles += [Line2D([], [], color="black", linestyle="-", label="test ≥ 0.99"),
                Line2D([], [], color="black", linestyle="--", label="validation = 1.0")]
    _legend(fig, handles)
    caption = ("pass@k: the chance that k attempts include one with test accuracy ≥ 0.99 (solid) or validation "
               "accuracy 1.0 (dashed); unbiased estimator over each trial's attempts, mean over trials, one panel "
               "per target (per label and target with several erm labels) and one colour per length.")
    if none_solved:
        caption += f" No attempt reached either in any cell: every curve is at 0 up to k = {top}."
    return Plot(name, caption, fig)


# -- bars per cell -------------------------------------------------------------------------------------------------
def _cell_columns(cells: pd.DataFrame):
    """The cells split into columns of at most BARS_PER_COLUMN rows, and the axes for them."""
    n = len(cells)
    columns = max(1, math.ceil(n / BARS_PER_COLUMN))
    rows_per = math.ceil(n / columns)
    fig, axes = _figure(ncols=columns, squeeze=False, sharex=True)
    chunks = [cells.iloc[i * rows_per:(i + 1) * rows_per] for i in range(columns)]
    size = 9 if rows_per <= 15 else 8 if rows_per <= 24 else 7
    return fig, list(axes.flat), chunks, rows_per, size


def _cell_labels(cells: pd.DataFrame) -> list[str]:
    """`fn_a L20`, or `sgd fn_a L20` when the cells have several method labels."""
    cells = _labelled(cells)
    several = cells["method_label"].nunique() > 1
    return [f"{m} {t} L{length}" if several else f"{t} L{length}"
            for m, t, length in zip(cells["method_label"], cells["target"], cells["length"], strict=True)]


def draw_status_breakdown(cells: pd.DataFrame) -> Plot:
    """Stacked horizontal bars: the share of each attempt status per cell."""
    name = "status_breakdown"
    if cells.empty:
        return Plot(name, "No cell has attempts.")
    fig, axes, chunks, rows_per, size = _cell_columns(cells)
    used = [s for s in STATUSES if cells[f"share_{s}"].fillna(0).any()]
    for ax, chunk in zip(axes, chunks, strict=True):
        y = np.arange(len(chunk))
        left = np.zeros(len(chunk))
        for status in used:
            share = chunk[f"share_{status}"].fillna(0).to_numpy(dtype=float)
            ax.barh(y, share, left=left, color=STATUS_COLOURS[status], height=0.8)
            left += share
        ax.set_yticks(y, _cell_labels(chunk), fontsize=size)
        ax.set_ylim(rows_per - 0.5, -0.5)
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of attempts", fontsize=9)
    _legend(fig, [Patch(color=STATUS_COLOURS[s], label=s) for s in used], "status")
    return Plot(name, f"Share of each verify status among the attempts of every cell ({len(cells)} cell(s)); "
                      "green is ok, the other colours the ways a candidate failed.", fig)


def draw_cost(cells: pd.DataFrame) -> Plot:
    """Cost per cell in USD; cells that also had unpriced attempts are hatched."""
    name = "cost_per_cell"
    cost = cells["cost_usd"]
    unpriced = int(cells["unpriced_attempts"].sum()) if len(cells) else 0
    if cells.empty:
        return Plot(name, "No cell has attempts.")
    if cost.isna().all():
        return Plot(name, f"Nothing is priced: the {unpriced} answered call(s) came from models without a known "
                          "price, so there is no cost to plot (unpriced is never shown as free).")
    if not (cost.fillna(0) > 0).any():
        note = f"; {unpriced} unpriced call(s) are not counted" if unpriced else ""
        return Plot(name, f"Every priced call cost $0.00 (an offline proposer){note}: nothing to plot.")
    fig, axes, chunks, rows_per, size = _cell_columns(cells)
    for ax, chunk in zip(axes, chunks, strict=True):
        y = np.arange(len(chunk))
        bars = ax.barh(y, chunk["cost_usd"].fillna(0).to_numpy(dtype=float), color="#1f77b4", height=0.8)
        for bar, missing in zip(bars, chunk["unpriced_attempts"].to_numpy(), strict=True):
            if missing:
                bar.set_hatch("//")
                bar.set_edgecolor("#d62728")
        ax.set_yticks(y, _cell_labels(chunk), fontsize=size)
        ax.set_ylim(rows_per - 0.5, -0.5)
        ax.set_xlabel("USD", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(4))
    handles = [Patch(color="#1f77b4", label="priced cost")]
    if unpriced:
        handles.append(Patch(facecolor="#1f77b4", hatch="//", edgecolor="#d62728",
                             label=f"also had unpriced attempts ({unpriced}, not included)"))
    _legend(fig, handles)
    caption = (f"Cost per cell in USD: the sum of the prices of its attempts' model calls, one bar per cell "
               f"(total ${cost.sum():.2f}).")
    if unpriced:
        caption += f" Hatched cells also made {unpriced} call(s) without a known price, which are not included."
    return Plot(name, caption, fig)


# -- methods: accuracy against sample size ---------------------------------------------------------------------------
def draw_accuracy_vs_samples(method_cells: pd.DataFrame, series: dict[str, list[str]]) -> Plot:
    """Selected test accuracy against n_train (log scale), one panel per target (mean over its lengths), one curve
    per series (analysis.methods.sample_size_series)."""
    name = "accuracy_vs_samples"
    known = method_cells.dropna(subset=["n_train"])
    known = known[known["test_mean"].notna()]
    missing = sorted(set(method_cells["method_label"]) - set(known["method_label"]))
    if known.empty:
        return Plot(name, "No row records how many samples its method trained on (n_train), so accuracy cannot be "
                          "plotted against sample size.")
    sizes = {s: sorted(known[known["method_label"].isin(labels)]["n_train"].unique()) for s, labels in series.items()}
    if max((len(v) for v in sizes.values()), default=0) < 2:
        shown = ", ".join(f"{s} n={int(v[0])}" for s, v in sizes.items() if v)
        return Plot(name, f"Every method was trained on a single sample size ({shown}): a curve against sample "
                          "size needs labels of one method at several n_train (e.g. sgd-n200, sgd-n1000).")
    targets = _target_order(known["target"])
    fig, axes, size = _panels(len(targets))
    styles = series_styles(series)
    for ax, target in zip(axes, targets, strict=True):
        mine = known[known["target"] == target]
        for name_, labels in series.items():
            curve = mine[mine["method_label"].isin(labels)].groupby("n_train")["test_mean"].mean()
            if curve.empty:
                continue
            ax.plot(curve.index.astype(float), curve.to_numpy(), linestyle="-" if len(curve) > 1 else "none",
                    markersize=5, linewidth=1.3, **styles[name_])
        ax.set_xscale("log")
        ticks = sorted(int(v) for v in mine["n_train"].unique())
        ax.set_xticks(ticks, [_count(v) for v in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(min(ticks) / 1.5, max(ticks) * 1.5)
        _accuracy_axis(ax, size)
        ax.set_title(str(target), fontsize=size + 1)
        ax.set_xlabel("samples trained on", fontsize=size)
    axes[0].set_ylabel("selected test accuracy", fontsize=size)
    _legend(fig, [Line2D([], [], label=s, linewidth=1.3, **st) for s, st in styles.items()], "method")
    lengths = _lengths_text(known["length"])
    caption = ("Selected test accuracy against the number of training samples (log scale), one panel per target "
               f"(mean over its lengths: {lengths}), one curve per method: the labels of one method at different "
               "n_train form its curve; a method at one size is a single marker. The grey line is chance (0.5).")
    if missing:
        caption += f" Not shown (no n_train recorded): {', '.join(missing)}."
    return Plot(name, caption, fig)


# -- length generalisation: selected programs scored at other lengths (analysis.generalize) -----------------------
def draw_generalization(table: pd.DataFrame) -> Plot:
    """Test accuracy of the selected erm programs at every length they were scored at, one panel per target (per
    label and target with several labels), one line per length they were found at (mean over trials)."""
    name = "length_generalization"
    scored = table[table["test_acc"].notna()]
    if scored.empty:
        return Plot(name, "No selected program could be scored at another length (every row is undefined: the "
                          "source rule reads positions the other lengths do not have).")
    if scored.groupby(["method_label", "target", "source_length"])["length"].nunique().max() < 2:
        return Plot(name, "Every selected program was scored at one length only "
                          f"({_lengths_text(scored['length'])}), so there is no curve across lengths.")
    keys, panels = _panel_keys(scored)
    scored = scored.assign(_panel=keys)
    colours = length_colours(scored["source_length"])
    fig, axes, size = _panels(len(panels))
    for ax, panel in zip(axes, panels, strict=True):
        mine = scored[scored["_panel"] == panel]
        lengths = sorted(int(v) for v in mine["length"].unique())
        position = {v: i for i, v in enumerate(lengths)}
        for source, curve in mine.groupby("source_length", sort=True):
            means = curve.groupby("length")["test_acc"].mean()
            x = [position[int(v)] for v in means.index]
            ax.plot(x, means.to_numpy(), marker="o", markersize=3, linewidth=1.3, color=colours[int(source)],
                    linestyle="-" if len(means) > 1 else "none")
            if int(source) in means.index:  # where it was found
                ax.plot([position[int(source)]], [means.loc[int(source)]], marker="*", markersize=9,
                        linestyle="none", color=colours[int(source)])
        _accuracy_axis(ax, size)
        ax.set_xticks(range(len(lengths)), [str(v) for v in lengths])
        ax.set_xlim(-0.5, len(lengths) - 0.5)
        ax.set_title(panel, fontsize=size + 1)
        ax.set_xlabel("length scored at", fontsize=size)
    axes[0].set_ylabel("test accuracy", fontsize=size)
    handles = [Line2D([], [], color=c, marker="o", markersize=4, label=f"found at L{v}") for v, c in colours.items()]
    handles.append(Line2D([], [], color="black", marker="*", markersize=8, linestyle="none", label="its own length"))
    _legend(fig, handles)
    undefined = int(table["test_acc"].isna().sum())
    caption = ("Length generalisation: the selected erm programs scored on fresh test sets at other lengths "
               "(llm-erm generalize), mean test accuracy over trials, one panel per target and one line per length "
               "the program was found at (a star marks that length). The grey line is chance (0.5).")
    if undefined:
        caption += f" {undefined} score(s) are undefined (the rule reads positions a shorter input lacks) and left out."
    return Plot(name, caption, fig)

"""The report's figures (matplotlib, Agg backend, PNG).

Every figure is FIGSIZE_IN at DPI, so every PNG is exactly PNG_SIZE pixels (no tight bounding box):
tests and the HTML layout can rely on it. Each function takes the analysis tables and returns the path
written.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from llm_erm.results.schema import STATUSES  # noqa: E402

FIGSIZE_IN = (12.0, 8.0)
DPI = 100
PNG_SIZE = (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI))  # (width, height) in pixels
GRID_COLUMNS = 4

# One colour per status, worst-looking last; "ok" green so a healthy run reads at a glance.
STATUS_COLOURS = dict(
    zip(
        STATUSES,
        ["#2ca02c", "#7f7f7f", "#ff7f0e", "#bcbd22", "#d62728", "#9467bd", "#8c564b", "#e377c2",
         "#17becf", "#c7c7c7"],
        strict=True,
    )
)


def _figure(**subplots):
    return plt.subplots(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained", **subplots)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=DPI)
    plt.close(fig)
    return path


def _cell_labels(cells: pd.DataFrame) -> list[str]:
    return [f"{t} L{length}" for t, length in zip(cells["target"], cells["length"], strict=True)]


def _target_styles(targets) -> dict[str, dict]:
    """Line colour and style per target: ten distinct colours, then the same colours dashed, dotted."""
    palette = plt.get_cmap("tab10")
    return {
        t: {"color": palette(i % 10), "linestyle": ("-", "--", ":")[(i // 10) % 3]}
        for i, t in enumerate(sorted(set(targets)))
    }


def plot_accuracy_vs_length(cells: pd.DataFrame, path: Path) -> Path:
    """One panel per target: selected test accuracy (mean, 95% CI) and validation mean against length."""
    targets = list(dict.fromkeys(cells["target"]))
    rows = max(1, math.ceil(len(targets) / GRID_COLUMNS))
    fig, axes = _figure(nrows=rows, ncols=GRID_COLUMNS, sharey=True, squeeze=False)
    for ax in axes.flat[len(targets):]:
        ax.set_visible(False)
    for ax, target in zip(axes.flat, targets, strict=False):
        cell = cells[cells["target"] == target].sort_values("length")
        low = (cell["test_mean"] - cell["test_ci_low"]).fillna(0).clip(lower=0)
        high = (cell["test_ci_high"] - cell["test_mean"]).fillna(0).clip(lower=0)
        ax.errorbar(cell["length"], cell["test_mean"], yerr=[low, high], marker="o", capsize=3, label="test")
        ax.plot(cell["length"], cell["val_mean"], marker="x", linestyle="--", color="grey", label="validation")
        ax.set_title(f"{target} ({cell['target_name'].iloc[0]})", fontsize=9)
        ax.set_ylim(0.0, 1.05)
        ax.set_xticks(cell["length"])
        ax.axhline(0.5, color="lightgrey", linewidth=0.8, zorder=0)
        ax.tick_params(labelsize=8)
        ax.set_xlabel("length", fontsize=8)
    axes.flat[0].set_ylabel("selected accuracy")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Selected test accuracy vs length (mean over trials, 95% CI)")
    return _save(fig, path)


def _paired_curves(frame: pd.DataFrame, x: str, columns: tuple[str, str], titles: tuple[str, str],
                   xlabel: str, ylabel: str, ylim: tuple[float, float], path: Path) -> Path:
    """Two panels side by side, one curve per target in each: the mean of a column against `x`."""
    fig, axes = _figure(ncols=2, sharey=True)
    styles = _target_styles(frame["target"])
    means = frame.groupby(["target", x], sort=True)[list(columns)].mean()
    for target, curve in means.groupby(level="target"):
        xs = curve.index.get_level_values(x)
        for ax, column in zip(axes, columns, strict=True):
            ax.plot(xs, curve[column], marker="o", label=target, **styles[target])
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.set_ylim(*ylim)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0].set_ylabel(ylabel)
    axes[1].legend(fontsize=8, loc="lower right", ncols=2)
    return _save(fig, path)


def plot_progression(progress: pd.DataFrame, path: Path) -> Path:
    """Validation and test accuracy of the selection after a attempts, averaged per target."""
    return _paired_curves(
        progress, "attempt", ("best_val_acc", "best_test_acc"),
        ("validation accuracy of the selection so far", "test accuracy of the selection so far"),
        "attempts (budget)", "mean over trials and lengths", (0.0, 1.05), path,
    )


def plot_pass_at_k(curves: pd.DataFrame, path: Path) -> Path:
    """pass@k of "validation = 1.0" and of "test >= 0.99", averaged over each target's lengths."""
    return _paired_curves(
        curves, "k", ("val_pass_at_k", "test_pass_at_k"),
        ("pass@k: validation accuracy = 1.0", "pass@k: test accuracy >= 0.99"),
        "k", "pass@k (unbiased, mean over trials and lengths)", (-0.02, 1.02), path,
    )


def plot_status_breakdown(cells: pd.DataFrame, path: Path) -> Path:
    """Stacked horizontal bars: the share of each attempt status per cell."""
    fig, ax = _figure()
    labels = _cell_labels(cells)
    y = np.arange(len(cells))
    left = np.zeros(len(cells))
    for status in STATUSES:
        share = cells[f"share_{status}"].to_numpy(dtype=float)
        if share.any():
            ax.barh(y, share, left=left, color=STATUS_COLOURS[status], label=status, height=0.8)
        left += share
    ax.set_yticks(y, labels, fontsize=max(4, min(9, 600 // max(len(cells), 1))))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of attempts")
    ax.set_title("Compile / verify status per cell")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _save(fig, path)


def plot_cost(cells: pd.DataFrame, path: Path) -> Path:
    """Cost per cell in USD; cells with unpriced attempts are hatched and counted in the title."""
    fig, ax = _figure()
    labels = _cell_labels(cells)
    x = np.arange(len(cells))
    cost = cells["cost_usd"].fillna(0.0).to_numpy(dtype=float)
    unpriced = cells["unpriced_attempts"].to_numpy()
    bars = ax.bar(x, cost, color="#1f77b4")
    for bar, missing in zip(bars, unpriced, strict=True):
        if missing:
            bar.set_hatch("//")
            bar.set_edgecolor("#d62728")
    ax.set_xticks(x, labels, rotation=90, fontsize=max(4, min(9, 600 // max(len(cells), 1))))
    ax.set_ylabel("USD")
    total_unpriced = int(unpriced.sum())
    title = f"Cost per cell (total ${cost.sum():.2f})"
    if total_unpriced:
        title += f"; {total_unpriced} unpriced attempt(s) not included (hatched cells)"
    ax.set_title(title)
    if not cost.any():
        ax.text(0.5, 0.5, "no priced attempts", transform=ax.transAxes, ha="center", va="center",
                fontsize=14, color="grey")
    return _save(fig, path)

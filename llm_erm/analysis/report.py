"""The human-facing outputs: the headline table, its markdown, and the self-contained HTML report.

The HTML report is one file: plots are embedded as base64 PNG data URIs, styles are inline, nothing is
fetched, so it can be mailed, attached to a ticket or opened from a Prefect artifact link.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from llm_erm.analysis.leakage import LeakageReport
from llm_erm.analysis.methods import MODEL_METHODS, labels, search_labels


def _number(value: float, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _mean_ci(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.3f}" if math.isnan(low) else f"{mean:.3f} ± {(high - low) / 2:.3f}"


def _cost(cost: float, unpriced: int) -> str:
    text = "unpriced" if math.isnan(cost) else f"${cost:.2f}"
    return text + (f" (+{unpriced} unpriced)" if unpriced and not math.isnan(cost) else "")


def limit_flag(count: Any) -> str:
    """Marks a score whose selected program was stopped by a time or memory limit on test: a lower bound."""
    try:
        count = int(count)
    except (TypeError, ValueError):
        return ""
    return f" [limit hit on test in {count} trial(s)]" if count > 0 else ""


def headline_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The per-cell figures a reader looks at first, formatted as strings (one row per cell, in order; a
    `method` column first when the cells have several method labels)."""
    several = "method_label" in cells and cells["method_label"].nunique() > 1
    with_tools = "tools" in cells and cells["tools"].notna().any()
    with_truncated = "truncated_answers" in cells and (cells["truncated_answers"] > 0).any()
    rows = []
    for cell in cells.itertuples(index=False):
        calls_model = getattr(cell, "method", "erm") in MODEL_METHODS
        rows.append(
            {
                **({"method": cell.method_label} if several else {}),
                "target": f"{cell.target} ({cell.target_name})",
                "L": cell.length,
                "trials": f"{cell.trials_scored}/{cell.trials}",
                "test acc (95% CI)": _mean_ci(cell.test_mean, cell.test_ci_low, cell.test_ci_high)
                + limit_flag(getattr(cell, "selected_limit_on_test", 0)),
                "test std": _number(cell.test_std) if cell.trials_scored > 1 else "—",  # a spread needs 2 trials
                "val acc": _number(cell.val_mean),
                "val-test gap": _number(cell.val_test_gap),
                "attempts/trial": _number(cell.attempts_made_mean, 1),
                "early stops": cell.early_stops,
                "ok share": _number(cell.share_ok, 2),
                "tokens": f"{cell.prompt_tokens + cell.completion_tokens:,}",
                "cost": _cost(cell.cost_usd, cell.unpriced_attempts) if calls_model else "—",
                **({"tools": cell.tools or "none"} if with_tools else {}),
                **({"truncated answers": int(cell.truncated_answers)} if with_truncated else {}),
            }
        )
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub/Prefect markdown table of the frame's values as text."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def headline_markdown(run_id: str, cells: pd.DataFrame, leakage: LeakageReport, report_path: Path) -> str:
    """The markdown for the run's Prefect artifact: verdict, the headline table, a link to the report."""
    verdict = ("no leakage found" if leakage.ok and not leakage.not_checked
               else leakage.verdict() if leakage.ok else f"**{leakage.verdict()}**")
    lines = [
        f"## LLM-ERM run `{run_id}`",
        "",
        f"{len(cells)} cell(s); leakage check: {verdict}. "
        # a path, not a file:// link: the Prefect UI is a web page, and browsers do not open those from one
        f"Full report: `{report_path.resolve()}` (open it on the machine that ran it, or `llm-erm view`)",
        "",
        markdown_table(headline_table(cells)),
    ]
    for finding in leakage.leaks[:10]:
        lines.append(f"- leak `{finding.kind}` in `{finding.dataset_path}`: {finding.detail}")
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.45em; text-align: right; }
table.text td { text-align: left; } td.wrap { white-space: normal; max-width: 40em; text-align: left; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.verdict { display: inline-block; padding: 0.3em 0.8em; border-radius: 4px; color: white; font-weight: bold; }
.pass { background: #2e7d32; } .fail { background: #c62828; } .warn { background: #b26a00; }
figure { margin: 1em 0 1.6em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { max-width: 60em; color: #333; font-size: 0.92em; } figcaption b { color: #111; }
p.missing { border-left: 4px solid #bbb; padding: 0.4em 0.8em; background: #f7f7f7; max-width: 60em; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
details > summary { cursor: pointer; color: #1558b0; }
.scroll { overflow-x: auto; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
"""

PASS_AT_K_SHOWN = (1, 2, 3, 5, 10, 20, 50, 100)  # the k columns of the pass@k table (plus the largest k)
STORE_PATH_PARTS = 3  # dataset stores are shown by their last path components (the full path in a tooltip)


def _table_html(frame: pd.DataFrame, float_digits: int = 3, css_class: str = "") -> str:
    if frame.empty:
        return "<p>(none)</p>"
    frame = frame.astype(object).where(frame.notna(), "—")
    html_table = frame.to_html(
        index=False, border=0, classes=css_class, float_format=lambda v: f"{v:.{float_digits}f}"
    )
    return f'<div class="scroll">{html_table}</div>'


def status_counts(cells: pd.DataFrame) -> pd.DataFrame:
    """Attempts per status for every status that occurs in the run, and the share of ok attempts."""
    occurring = [c for c in cells.columns if c.startswith("n_") and cells[c].any()]
    table = cells[[*_keys(cells), "attempts", *occurring]].rename(columns=lambda c: c.removeprefix("n_"))
    return table.assign(ok_share=cells["share_ok"])


def pass_at_k_wide(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, pass@k of validation = 1.0, then of test >= 0.99, at a few k (1, 2, 3, 5, 10 ... and the
    largest): the table stays narrow however many attempts a trial had; every k is in pass_at_k.csv."""
    ks = sorted({int(c.rsplit("_", 1)[1]) for c in cells.columns if c.startswith("val_pass_at_")})
    shown = [k for k in ks if k in PASS_AT_K_SHOWN or k == ks[-1]] if ks else []
    columns = [f"{m}_pass_at_{k}" for m in ("val", "test") for k in shown]
    renamed = {c: c.replace("_pass_at_", " @") for c in columns}
    return cells[[*_keys(cells), *columns]].rename(columns=renamed)


def _keys(cells: pd.DataFrame) -> list[str]:
    """The columns that name a cell: target and length, and the method label when there are several."""
    several = "method_label" in cells and cells["method_label"].nunique() > 1
    return ["method_label", "target", "length"] if several else ["target", "length"]


def _short_store(path: Any) -> str:
    if not isinstance(path, str) or not path:
        return "—"
    return "…/" + "/".join(Path(path).parts[-STORE_PATH_PARTS:]) if len(Path(path).parts) > STORE_PATH_PARTS else path


def dataset_table(datasets: pd.DataFrame) -> pd.DataFrame:
    """The leakage check's store table in eight columns: sizes, distinct inputs, duplicates, overlaps per split."""
    if datasets.empty:
        return datasets

    def triple(row, what):
        return " / ".join(str(row[f"{split}_{what}"]) for split in ("train", "val", "test"))

    rows = []
    for row in datasets.to_dict("records"):
        rows.append({
            "store": _short_store(row["dataset_path"]), "target": row["target"], "L": row["length"],
            "size tr/va/te": triple(row, "size"), "distinct tr/va/te": triple(row, "distinct"),
            "duplicates tr/va/te": triple(row, "duplicates"),
            "overlap tr-va/tr-te/va-te": f"{row['overlap_train_val']} / {row['overlap_train_test']} / "
                                         f"{row['overlap_val_test']}",
        })
    return pd.DataFrame(rows)


def findings_table(findings: pd.DataFrame) -> str:
    if findings.empty:
        return "<p>(none)</p>"
    esc = html.escape
    head = "".join(f"<th>{c}</th>" for c in ("severity", "kind", "cell", "trial / attempt", "count", "detail", "store"))
    body = []
    for f in findings.to_dict("records"):
        where = "—" if pd.isna(f["trial"]) else f"{f['trial']} / {f['attempt']}"
        body.append(
            f"<tr><td>{esc(f['severity'])}</td><td>{esc(f['kind'])}</td><td>{esc(str(f['target']))} L{f['length']}</td>"
            f"<td>{where}</td><td>{f['count']}</td><td class=\"wrap\">{esc(f['detail'])}</td>"
            f"<td title=\"{esc(str(f['dataset_path']))}\">{esc(_short_store(f['dataset_path']))}</td></tr>"
        )
    return f'<div class="scroll"><table class="text"><tr>{head}</tr>{"".join(body)}</table></div>'


def methods_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The paper's table: one row per (target, length), one column per method label, selected test accuracy
    (mean ± 95% CI half-width over scored trials, and the number of scored trials)."""
    order = labels(cells)
    rows = []
    for (target, length), cell in cells.groupby(["target", "length"], sort=False):
        row = {"target": target, "L": int(length)}
        by_label = cell.set_index("method_label")
        for label in order:
            if label not in by_label.index:
                row[label] = "—"
                continue
            c = by_label.loc[label]
            text = _mean_ci(c["test_mean"], c["test_ci_low"], c["test_ci_high"])
            row[label] = text if text == "—" else f"{text} ({int(c['trials_scored'])})"
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["target", "L", *order])
    key = frame["target"].map(lambda t: (len(str(t)), str(t)))
    return frame.assign(_key=key).sort_values(["_key", "L"]).drop(columns="_key")


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


PLOT_TITLES = {
    "accuracy_vs_length": "Accuracy against length",
    "accuracy_vs_samples": "Accuracy against sample size",
    "length_generalization": "Length generalisation",
    "attempt_progression": "Attempt progression",
    "pass_at_k": "pass@k",
    "status_breakdown": "Status per cell",
    "cost_per_cell": "Cost per cell",
}


def _figure_html(plot: Any, path: Path | None) -> str:
    esc = html.escape
    title = PLOT_TITLES.get(plot.name, plot.name)
    if path is None:
        return f'<p class="missing" data-plot="{esc(plot.name)}"><b>{esc(title)}:</b> {esc(plot.caption)}</p>'
    return (f'<figure data-plot="{esc(plot.name)}"><img alt="{esc(title)}" src="{png_data_uri(path)}" width="1200">'
            f"<figcaption><b>{esc(title)}.</b> {esc(plot.caption)}</figcaption></figure>")


def write_html_report(
    path: Path,
    *,
    run_id: str,
    facts: dict[str, Any],
    manifest: dict,
    cells: pd.DataFrame,
    leakage: LeakageReport,
    plots: list[tuple[Any, Path | None]],
    several_methods: bool = False,
) -> Path:
    """Write the self-contained report to `path` (see the module doc); `facts` head the page. `plots` are
    (plots.Plot, its PNG or None when it was not drawn) in page order. With several method labels the report
    opens with the methods table, and the per-cell sections describe the search (erm) labels."""
    esc = html.escape
    verdict = (
        f'<span class="verdict {"fail" if not leakage.ok else "pass" if not leakage.not_checked else "warn"}">'
        f"{esc(leakage.verdict())}</span>"
    )
    facts_html = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in facts.items()
    )
    methods_plots = {"accuracy_vs_length", "accuracy_vs_samples"} if several_methods else set()
    figures = "".join(_figure_html(p, png) for p, png in plots if p.name not in methods_plots)
    methods_html = ""
    if several_methods:
        methods_html = (
            "<h2>Methods</h2>"
            '<p class="note">Selected test accuracy per method label: mean ± 95% CI half-width (Student t) over the '
            "scored trials, their number in brackets. ERM's result is the candidate with the best validation "
            "accuracy; a baseline's is its one trained model. Every method is scored on the same test split.</p>"
            + _table_html(methods_table(cells), css_class="text")
            + "".join(_figure_html(p, png) for p, png in plots if p.name in methods_plots)
        )
    search = search_labels(cells) if several_methods else []
    shown = cells[cells["method_label"].isin(search)] if search else cells
    label_note = (f'<p class="note">The sections below describe the search label(s) <code>{esc(", ".join(search))}'
                  "</code>; every label's selected test accuracy is in the methods table above.</p>") if search else ""
    findings = leakage.findings_frame()
    config = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LLM-ERM report: {esc(run_id)}</title>
<style>{STYLE}</style></head><body>
<h1>LLM-ERM run <code>{esc(run_id)}</code></h1>
<p>{verdict}</p>
<table class="text">{facts_html}</table>
{methods_html}
<h2>Results per cell</h2>
{label_note}
<p class="note">Selected attempt = strictly highest validation accuracy in a trial (ties: earlier attempt); statistics
over trials with at least one scored candidate. 95% CI: Student's t, n-1 degrees of freedom; CI and std
undefined (—) for one trial.</p>
{_table_html(headline_table(shown))}
<h2>Plots</h2>
{figures}
<h2>Leakage checks</h2>
{findings_table(findings)}
<h3>Dataset stores</h3>
{_table_html(dataset_table(leakage.datasets), css_class="text")}
<h2>Compile / verify status per cell</h2>
{_table_html(status_counts(shown), 2)}
<h2>pass@k</h2>
<p class="note">"val @k": some attempt among k reaches validation accuracy 1.0; "test @k": test accuracy &gt;= 0.99.
Unbiased estimator 1 - C(n-c,k)/C(n,k) per trial, averaged over trials; a trial of n &lt; k attempts contributes
pass@n. A few k are shown; pass_at_k.csv has every k.</p>
{_table_html(pass_at_k_wide(shown))}
<h2>Run configuration</h2>
<details><summary>manifest.json ({config.count(chr(10)) + 1} lines): config, versions, argv, sandbox, cells</summary>
<pre>{esc(config)}</pre></details>
</body></html>
"""
    path.write_text(body, encoding="utf-8")
    return path

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


def _number(value: float, digits: int = 3) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _mean_ci(mean: float, low: float, high: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.3f}" if math.isnan(low) else f"{mean:.3f} ± {(high - low) / 2:.3f}"


def _cost(cost: float, unpriced: int) -> str:
    text = "unpriced" if math.isnan(cost) else f"${cost:.2f}"
    return text + (f" (+{unpriced} unpriced)" if unpriced and not math.isnan(cost) else "")


def headline_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The per-cell figures a reader looks at first, formatted as strings."""
    rows = []
    for cell in cells.itertuples(index=False):
        rows.append(
            {
                "target": f"{cell.target} ({cell.target_name})",
                "L": cell.length,
                "trials": f"{cell.trials_scored}/{cell.trials}",
                "test acc (95% CI)": _mean_ci(cell.test_mean, cell.test_ci_low, cell.test_ci_high),
                "test std": _number(cell.test_std),
                "val acc": _number(cell.val_mean),
                "val-test gap": _number(cell.val_test_gap),
                "attempts/trial": _number(cell.attempts_made_mean, 1),
                "early stops": cell.early_stops,
                "ok share": _number(cell.share_ok, 2),
                "tokens": f"{cell.prompt_tokens + cell.completion_tokens:,}",
                "cost": _cost(cell.cost_usd, cell.unpriced_attempts),
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
    verdict = (
        "no leakage found" if leakage.ok else f"**FAILED: {len(leakage.leaks)} leakage finding(s)**"
    )
    lines = [
        f"## LLM-ERM run `{run_id}`",
        "",
        f"{len(cells)} cell(s); leakage check: {verdict}. "
        f"Full report: [{report_path.name}]({report_path.resolve().as_uri()})",
        "",
        markdown_table(headline_table(cells)),
    ]
    for finding in leakage.leaks[:10]:
        lines.append(f"- leak `{finding.kind}` in `{finding.dataset_path}`: {finding.detail}")
    return "\n".join(lines) + "\n"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.5em; text-align: right; }
table.text td { text-align: left; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.verdict { display: inline-block; padding: 0.3em 0.8em; border-radius: 4px; color: white; font-weight: bold; }
.pass { background: #2e7d32; } .fail { background: #c62828; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.8em; }
.scroll { overflow-x: auto; }
"""


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
    table = cells[["target", "length", "attempts", *occurring]].rename(columns=lambda c: c.removeprefix("n_"))
    return table.assign(ok_share=cells["share_ok"])


def pass_at_k_wide(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell, pass@1..K of validation = 1.0, then of test >= 0.99."""
    columns = [c for c in cells.columns if c.startswith(("val_pass_at_", "test_pass_at_"))]
    renamed = {c: c.replace("_pass_at_", " @") for c in columns}
    return cells[["target", "length", *columns]].rename(columns=renamed)


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_html_report(
    path: Path,
    *,
    run_id: str,
    facts: dict[str, Any],
    manifest: dict,
    cells: pd.DataFrame,
    leakage: LeakageReport,
    plots: dict[str, Path],
) -> Path:
    """Write the self-contained report to `path` (see the module doc); `facts` head the page."""
    esc = html.escape
    verdict = (
        '<span class="verdict pass">leakage check passed</span>'
        if leakage.ok
        else f'<span class="verdict fail">FAILED: {len(leakage.leaks)} leakage finding(s)</span>'
    )
    facts_html = "".join(
        f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in facts.items()
    )
    figures = "".join(
        f'<figure><img alt="{esc(name)}" src="{png_data_uri(plot)}" width="1200">'
        f"<figcaption>{esc(name)}</figcaption></figure>"
        for name, plot in plots.items()
    )
    findings = leakage.findings_frame()
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LLM-ERM report: {esc(run_id)}</title>
<style>{STYLE}</style></head><body>
<h1>LLM-ERM run <code>{esc(run_id)}</code></h1>
<p>{verdict}</p>
<table>{facts_html}</table>
<h2>Results per cell</h2>
<p>Selected attempt = strictly highest validation accuracy in a trial (ties: earlier attempt); statistics over
trials with at least one scored candidate. 95% CI: Student's t, n-1 degrees of freedom; undefined for one trial.</p>
{_table_html(headline_table(cells))}
<h2>Plots</h2>
{figures}
<h2>Leakage checks</h2>
{_table_html(findings, css_class="text")}
<h3>Dataset stores</h3>
{_table_html(leakage.datasets)}
<h2>Compile / verify status per cell</h2>
{_table_html(status_counts(cells), 2)}
<h2>pass@k</h2>
<p>"val @k": some attempt among k reaches validation accuracy 1.0; "test @k": test accuracy &gt;= 0.99.
Unbiased estimator 1 - C(n-c,k)/C(n,k) per trial, averaged over trials; a trial of n &lt; k attempts
contributes pass@n.</p>
{_table_html(pass_at_k_wide(cells))}
<h2>Run configuration</h2>
<pre>{esc(json.dumps(manifest, indent=2, sort_keys=True, default=str))}</pre>
</body></html>
"""
    path.write_text(body, encoding="utf-8")
    return path

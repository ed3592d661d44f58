"""The paper's table, regenerated from a run, with the paper's reported numbers beside ours.

Its shape is the paper's (paper_reference.json: the task names and row order, n = 100, one column per method,
percentages). Each method column of a run becomes four CSV columns: ours (the mean selected test accuracy over
trials, %), its 95% CI, the trials behind it, the paper's number and the difference ours - paper; a cell that
cannot be filled says why (`not run`, `no scored trial`, or the reference's note, e.g. TabPFN's weights are
not available offline). A difference is *marked* when the paper's number lies outside our 95% CI.

The `protocol` column says how a column was produced: a classical learner's protocol (fair / paper), erm's
and icl's proposer (e.g. `proposer enumerate` offline, not the paper's model).

Where the run made one trial of a learner that fits several seeded models (classical `protocol: paper`,
upstream's 10 seeds), the CI is over those seeds, and `trials` says so ("1 trial x 10 seeds"). A CI is never
narrower than the test split's own binomial 95% interval (normal approximation, n = the stored test size):
seeds that build the same model, or a single trial, still carry the uncertainty of scoring on a finite test
set, so a 0.8-point difference on 10 000 test inputs is not marked for want of spread.
"""

from __future__ import annotations

import html
import json
import math
from functools import cache
from importlib import resources
from typing import Any

import pandas as pd

from llm_erm.analysis.stats import mean_std_ci, with_methods

REFERENCE_FILE = "paper_reference.json"


@cache
def reference() -> dict[str, Any]:
    """The paper's numbers and where they come from (one data file in the package)."""
    return json.loads(resources.files("llm_erm.analysis").joinpath(REFERENCE_FILE).read_text(encoding="utf-8"))


def _extra(value: Any) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _protocol(extra: dict[str, Any]) -> str | None:
    settings = extra.get("settings") if isinstance(extra.get("settings"), dict) else {}
    return settings.get("protocol")


def _cell(trials: pd.DataFrame, chosen: pd.DataFrame) -> dict[str, Any]:
    """Ours for one (label, target) at the paper's length: mean, CI, how many trials (and seeds) behind it."""
    scored = trials[trials["scored"]]
    if scored.empty:
        return {"why": "no scored trial"}
    values = scored["selected_test_acc"].astype(float).tolist()
    what = f"{len(values)} trial" + ("s" if len(values) != 1 else "")
    if len(values) == 1 and len(chosen) == 1:
        per_seed = _extra(chosen["method_extra"].iloc[0]).get("info", {}).get("per_seed")
        if isinstance(per_seed, list) and len(per_seed) > 1:
            values = [float(s["test_acc"]) for s in per_seed]
            what += f" x {len(values)} seeds"
    mean, _, low, high = mean_std_ci(values)
    n_test = _test_size(chosen)
    if n_test:  # never narrower than the test split's binomial interval
        floor = 1.96 * math.sqrt(max(mean * (1 - mean), 1 / n_test) / n_test)
        low = mean - floor if math.isnan(low) else min(low, mean - floor)
        high = mean + floor if math.isnan(high) else max(high, mean + floor)
    return {"mean": 100 * mean, "low": 100 * low, "high": 100 * high, "trials": what}


def _test_size(chosen: pd.DataFrame) -> int | None:
    """The stored test size of the cell's dataset (meta.json beside its splits), None when unknown."""
    from pathlib import Path

    for path in chosen.get("dataset_path", pd.Series(dtype=object)).dropna():
        try:
            return int(json.loads((Path(path) / "meta.json").read_text(encoding="utf-8"))["sizes"]["test"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def _columns(attempts: pd.DataFrame) -> list[tuple[str, str | None, str | None, str]]:
    """(paper column, method label or None, protocol, header) in the paper's column order; a method the run has
    under several labels gets one column per label, a paper column the run lacks one empty column."""
    ref = reference()
    present = attempts[["method_label", "method"]].drop_duplicates()
    out = []
    for column in ref["columns"]:
        labels = sorted(present.loc[present["method"] == column["method"], "method_label"]) if column["method"] else []
        if not labels:
            out.append((column["name"], None, None, column["name"]))
            continue
        for label in labels:
            rows = attempts[attempts["method_label"] == label]
            if column["method"] in ("erm", "icl") and "proposer" in rows:
                # what proposed: the paper's LLM-PV is a model; offline it is the enumerative learner
                protocols = {f"proposer {p}" for p in rows["proposer"].dropna().unique()}
            else:
                protocols = {p for p in (_protocol(_extra(v)) for v in rows["method_extra"]) if p}
            protocol = ", ".join(sorted(protocols)) or None
            header = column["name"] if len(labels) == 1 else f"{column['name']} [{label}]"
            out.append((column["name"], label, protocol, header))
    return out


def paper_table(trials: pd.DataFrame, attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per paper task, in the paper's order; per method column: ours, CI, trials, paper, difference,
    marked, and why a cell is blank. Percentages throughout."""
    ref = reference()
    attempts = with_methods(attempts)
    length = int(ref["length"])
    columns = _columns(attempts) if not attempts.empty else [(c["name"], None, None, c["name"]) for c in ref["columns"]]
    names = [c["name"] for c in ref["columns"]]
    chosen_rows = attempts[attempts["selected"].eq(True) & (attempts["length"] == length)] if not attempts.empty \
        else attempts
    rows = []
    for task in ref["rows"]:
        row: dict[str, Any] = {"task": task["task"], "target": task["target"], "length": length}
        for name, label, protocol, header in columns:
            paper_value = task["values"][names.index(name)]
            method = next(c["method"] for c in ref["columns"] if c["name"] == name)
            cell: dict[str, Any]
            if label is None:
                cell = {"why": ref["notes"].get(name.lower(), "not available here") if method is None else "not run"}
            else:
                mine = trials[(trials["method_label"] == label) & (trials["target"] == task["target"])
                              & (trials["length"] == length)]
                chosen = chosen_rows[(chosen_rows["method_label"] == label) & (chosen_rows["target"] == task["target"])]
                cell = _cell(mine, chosen) if not mine.empty else {"why": f"not run at {task['target']} n={length}"}
            mean = cell.get("mean", math.nan)
            low, high = cell.get("low", math.nan), cell.get("high", math.nan)
            row[f"{header}: ours"] = round(mean, 1) if not math.isnan(mean) else None
            row[f"{header}: ci_low"] = round(low, 1) if not math.isnan(low) else None
            row[f"{header}: ci_high"] = round(high, 1) if not math.isnan(high) else None
            row[f"{header}: trials"] = cell.get("trials", "")
            row[f"{header}: paper"] = paper_value
            row[f"{header}: diff"] = round(mean - paper_value, 1) if not math.isnan(mean) else None
            row[f"{header}: marked"] = bool(not math.isnan(low) and not low <= paper_value <= high)
            row[f"{header}: protocol"] = protocol or ""
            row[f"{header}: blank_reason"] = cell.get("why", "")
        rows.append(row)
    return pd.DataFrame(rows)


def headers(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(c.rsplit(": ", 1)[0] for c in table.columns if ": " in c))


def paper_table_html(table: pd.DataFrame) -> str:
    """A self-contained HTML page: the paper's shape, ours with its CI over the paper's number and the difference;
    a marked cell (the paper's number outside our CI) is highlighted; a blank cell shows its reason."""
    ref = reference()
    cols = headers(table)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["Task", *cols])
    body = []
    for _, row in table.iterrows():
        cells = [f"<td>{html.escape(row['task'])} <small>({html.escape(row['target'])})</small></td>"]
        for c in cols:
            ours, paper = row[f"{c}: ours"], row[f"{c}: paper"]
            if ours is None or (isinstance(ours, float) and math.isnan(ours)):
                why = row[f"{c}: blank_reason"]
                cells.append(f"<td class='blank' title='{html.escape(why)}'>— <small>{html.escape(why)}</small>"
                             f"<br><small>paper {paper}</small></td>")
                continue
            low, high = row[f"{c}: ci_low"], row[f"{c}: ci_high"]
            ci = f"[{low}, {high}]" if low is not None and not (isinstance(low, float) and math.isnan(low)) else "(no CI)"
            mark = " class='marked'" if row[f"{c}: marked"] else ""
            cells.append(f"<td{mark}><b>{ours}</b> <small>{ci}, {html.escape(str(row[f'{c}: trials']))}</small><br>"
                         f"<small>paper {paper}, diff {row[f'{c}: diff']:+.1f}</small></td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    protocols = "; ".join(f"{c}: {p}" for c in cols if (p := next((v for v in table[f'{c}: protocol'] if v), "")))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>The paper's table, regenerated</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;vertical-align:top}td.marked{background:#fde2e2}td.blank{color:#777}</style></head><body>"
        f"<h1>The paper's table, regenerated (n = {ref['length']}, test accuracy %)</h1>"
        f"<p>Ours: mean selected test accuracy with its 95% CI; beside it the paper's number and the difference. "
        f"Red: the paper's number lies outside our CI. Paper: {html.escape(ref['source'])}.</p>"
        f"<p>Baseline protocols: {html.escape(protocols or 'none recorded')}.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "<p>" + "<br>".join(html.escape(f"{k}: {v}") for k, v in ref["notes"].items()) + "</p></body></html>"
    )

"""What the viewer's pages show, as JSON-ready dicts built from a results directory (read-only).

Every function takes the results directory (and a run id, a cell ...) and returns plain data; the server
turns it into JSON. Nothing here writes: the viewer only reads the ledger, the manifest and the report.
"""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_erm.analysis.methods import MODEL_METHODS, SEARCH_METHODS, labels, method_cells, parse_extra
from llm_erm.analysis.stats import CELL_KEYS as METHOD_KEYS
from llm_erm.analysis.stats import summarize_trials, with_methods
from llm_erm.errors import UsageError
from llm_erm.results import ledger
from llm_erm.results.progress import UNFINISHED, cell_statuses, marker_alive
from llm_erm.results.prompts import with_prompts
from llm_erm.results.schema import PROPOSE_ERROR, SKIPPED_BUDGET, VERIFY_STATUSES
from llm_erm.viewer.ledger_cache import FILE_COLUMN, LedgerCache, read_row, trial_files

LIMIT_STATUSES = ("timeout", "memory")
FIRST_ERROR_CHARS = 300  # the cell page shows this much of an error; the attempt page all of it
LEAKAGE_FILE = "leakage_findings.parquet"
REPORT_FILE = "report.html"


class NotFound(Exception):
    """The run, cell or attempt asked for is not in the results directory."""


def natural_key(text: str) -> tuple:
    """fn_b before fn_aa, L20 before L100: numbers compare as numbers, shorter ids first."""
    return (len(text), [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)])


def jsonable(value: Any) -> Any:
    """Plain JSON values: NaN and pandas' NA become null, numpy scalars Python numbers, times ISO text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _num(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


class Results:
    """The runs under one results directory, read through a LedgerCache (safe to share between threads)."""

    def __init__(self, results_dir: Path):
        self.root = Path(results_dir).resolve()
        self.cache = LedgerCache()
        self._derived: dict[tuple, Any] = {}  # (what, run, generation, ...) -> computed payload part

    # -- runs -----------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        return [e.name for e in entries if e.is_dir() and not e.name.startswith(".") and (
            os.path.isdir(os.path.join(e.path, ledger.ATTEMPTS_DIR))
            or os.path.isfile(os.path.join(e.path, ledger.MANIFEST_FILE)))]

    def run_dir(self, run_id: str) -> Path:
        """The directory of a run listed by run_ids (never a path outside the results directory)."""
        if run_id not in self.run_ids():
            raise NotFound(f"no run {run_id!r} under {self.root}")
        return self.root / run_id

    def rows(self, run_id: str) -> tuple[pd.DataFrame, int]:
        frame, generation = self.cache.frame(self.run_dir(run_id))
        return frame, generation

    def _memo(self, key: tuple, compute):
        if key not in self._derived:
            if len(self._derived) > 256:
                self._derived.clear()
            self._derived[key] = compute()
        return self._derived[key]

    def version(self, run_id: str | None = None) -> str:
        """A cheap fingerprint that changes whenever anything under the run (or any run) changes."""
        ids = [run_id] if run_id else self.run_ids()
        newest, count = 0, 0
        if run_id:
            self.run_dir(run_id)  # NotFound for a run that is not listed
        for rid in ids:
            run_dir = self.root / rid
            for dirpath, _dirs, names in os.walk(run_dir):
                for name in names:
                    try:
                        newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime_ns)
                    except FileNotFoundError:
                        continue
                    count += 1
        return f"{newest:x}-{count}-{len(ids)}"

    def runs(self) -> list[dict[str, Any]]:
        return [self.run_overview(run_id) for run_id in self.run_ids()]

    def run_overview(self, run_id: str) -> dict[str, Any]:
        run_dir = self.run_dir(run_id)
        frame, generation = self.rows(run_id)
        manifest = ledger.read_manifest(run_dir)
        state = self._memo(("state", run_id, generation, _mtime_ns(run_dir / ledger.MANIFEST_FILE),
                            _markers_signature(run_dir)), lambda: run_state(run_dir, frame))
        df = with_methods(frame)
        cost = df["cost_usd"].sum(min_count=1) if len(df) else math.nan
        created = manifest.get("created_at") or _first_time(df)
        return jsonable({
            "run_id": run_id,
            "state": state["state"],
            "state_detail": state["detail"],
            "cells": int(df[["target", "length"]].drop_duplicates().shape[0]) if len(df) else 0,
            "cells_planned": len({(c.get("target"), c.get("length")) for c in manifest.get("cells", [])}) or None,
            "methods": labels(df) if len(df) else [],
            "trials": int(df.groupby(["method_label", "target", "length", "trial"]).ngroups) if len(df) else 0,
            "attempts": len(df),
            "cost_usd": cost,
            "unpriced": int(_unpriced(df).sum()) if len(df) else 0,
            "created_at": created,
            "updated_at": manifest.get("updated_at") or _newest_trial_iso(run_dir),
            "prefect_url": prefect_link(manifest),
            "analysed": (run_dir / ledger.REPORT_DIR / REPORT_FILE).exists(),
        })

    # -- one run: the grid ----------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any]:
        run_dir = self.run_dir(run_id)
        frame, generation = self.rows(run_id)
        overview = self.run_overview(run_id)
        manifest = ledger.read_manifest(run_dir)
        grid = self._memo(("grid", run_id, generation), lambda: _grid(frame))
        leakage = leakage_verdict(run_dir, _newest_trial_mtime(run_dir))
        for method in grid["methods"]:
            for cell in method["cells"]:
                found = leakage["by_cell"].get(f"{cell['target']}|{cell['length']}")
                if found:
                    cell["flags"]["leaks"] = found["leaks"]
                    cell["flags"]["leak_warnings"] = found["warnings"]
        facts = {
            "proposer": manifest.get("proposer"),
            "models": sorted(frame["model"].dropna().unique().tolist()) if len(frame) else [],
            "sandbox": manifest.get("sandbox"),
            "selection rule": manifest.get("selection_rule"),
            "trials per cell": manifest.get("trials_per_cell"),
            "host": manifest.get("host"),
            "argv": " ".join(manifest.get("argv", [])) or None,
        }
        return jsonable({
            **overview,
            "facts": {k: v for k, v in facts.items() if v not in (None, [], "")},
            "leakage": {k: v for k, v in leakage.items() if k != "by_cell"},
            "report_url": f"/runs/{run_id}/report/{REPORT_FILE}" if overview["analysed"] else None,
            **grid,
        })

    # -- one cell: its trials and their attempts --------------------------------------------------------
    def cell(self, run_id: str, label: str, target: str, length: int) -> dict[str, Any]:
        run_dir = self.run_dir(run_id)
        frame, generation = self.rows(run_id)
        df = with_methods(frame)
        rows = df[(df["method_label"] == label) & (df["target"] == target) & (df["length"] == length)]
        if rows.empty:
            raise NotFound(f"no rows for {label} {target} L{length} in run {run_id!r}")
        trials = summarize_trials(rows)
        summary = method_cells(trials, rows).iloc[0].to_dict()
        chosen = {int(t): (int(a) if pd.notna(a) else None)
                  for t, a in zip(trials["trial"], trials["selected_attempt"], strict=True)}
        groups, group_of = signature_groups(rows)
        leakage = leakage_verdict(run_dir, _newest_trial_mtime(run_dir))
        findings = [f for f in leakage.get("findings", []) if f["target"] == target and f["length"] == length]
        out_trials = []
        for trial, group in rows.sort_values(["trial", "attempt"]).groupby("trial", sort=True):
            attempts = [_attempt_summary(r, chosen.get(int(trial)), group_of) for r in group.to_dict("records")]
            t_row = trials[trials["trial"] == trial].iloc[0]
            out_trials.append({
                "trial": int(trial), "selected_attempt": chosen.get(int(trial)),
                "selected_test_acc": t_row["selected_test_acc"] if t_row["scored"] else None,
                "selected_val_acc": t_row["selected_val_acc"], "attempts": attempts,
                "stopped_early": bool(t_row["stopped_early"]),
            })
        return jsonable({
            "run_id": run_id, "label": label, "method": rows["method"].iloc[0], "target": target,
            "target_name": rows["target_name"].dropna().iloc[0] if rows["target_name"].notna().any() else None,
            "length": length, "summary": summary, "trials": out_trials, "groups": groups,
            "leakage_findings": findings, "analysed": leakage["status"] != "not analysed",
            "search": rows["method"].iloc[0] in SEARCH_METHODS,
        })

    # -- one attempt: everything it said -------------------------------------------------------------
    def attempt(self, run_id: str, label: str, target: str, length: int, trial: int, attempt: int) -> dict:
        run_dir = self.run_dir(run_id)
        frame, _ = self.rows(run_id)
        df = with_methods(frame)
        cell = df[(df["method_label"] == label) & (df["target"] == target) & (df["length"] == length)]
        match = cell[(cell["trial"] == trial) & (cell["attempt"] == attempt)]
        if match.empty:
            raise NotFound(f"no attempt {label} {target} L{length} t{trial} a{attempt} in run {run_id!r}")
        relative = match[FILE_COLUMN].iloc[0]
        row = read_row(run_dir, relative, {"attempt": attempt, "trial": trial, "method_label": label})
        if row is None:
            raise NotFound(f"attempt {attempt} is no longer in {relative}")
        row = with_prompts(run_dir, [row])[0]  # the prompt is stored once per run, by its hash
        row.setdefault("method", match["method"].iloc[0])
        row.setdefault("method_label", label)
        row["method_extra"] = parse_extra(row.get("method_extra"))
        row["proposal_extra"] = parse_extra(row.get("proposal_extra"))
        row["request_params"] = parse_extra(row.get("request_params"))
        trials = summarize_trials(cell[cell["trial"] == trial])
        selected = trials["selected_attempt"].iloc[0] if len(trials) else None
        _, group_of = signature_groups(cell)
        order = cell.sort_values(["trial", "attempt"])[["trial", "attempt"]].astype(int).values.tolist()
        here = order.index([trial, attempt])
        return jsonable({
            "run_id": run_id, "label": label, "target": target, "length": length, "trial": trial,
            "attempt": attempt, "row": row, "file": relative,
            "selected_by_rule": selected is not None and pd.notna(selected) and int(selected) == attempt,
            "group": group_of.get(row.get("signature")),
            "previous": order[here - 1] if here > 0 else None,
            "next": order[here + 1] if here + 1 < len(order) else None,
        })

    # -- two runs --------------------------------------------------------------------------------------
    def compare(self, baseline: str, candidate: str) -> dict[str, Any]:
        from llm_erm.analysis.compare import compare_attempts

        base = with_methods(self.rows(baseline)[0])
        cand = with_methods(self.rows(candidate)[0])
        if base.empty or cand.empty:
            empty = baseline if base.empty else candidate
            raise NotFound(f"run {empty!r} has no attempts yet: nothing to compare")
        base_labels, cand_labels = labels(base), labels(cand)
        comparison = compare_attempts(baseline, base, candidate, cand)
        reasons: dict[tuple[str, str, int], list[dict]] = {}
        for r in comparison.regressions:
            reasons.setdefault((r.method_label, r.target, r.length), []).append({"kind": r.kind, "detail": r.detail})
        table = comparison.table.to_dict("records") if len(comparison.table) else []
        methods = []
        for label in [lbl for lbl in base_labels if lbl in cand_labels]:
            rows = [row for row in table if row["method_label"] == label]
            for row in rows:
                row["regressions"] = reasons.get((label, row["target"], int(row["length"])), [])
            methods.append({
                "label": label, "cells": rows, "regressions": sum(1 for row in rows for _ in row["regressions"]),
                "only_in_baseline": [(t, n) for m, t, n in comparison.only_in_baseline if m == label],
                "only_in_candidate": [(t, n) for m, t, n in comparison.only_in_candidate if m == label],
            })
        return jsonable({
            "baseline": baseline, "candidate": candidate, "methods": methods,
            "regressions": sum(m["regressions"] for m in methods),
            "labels_only_in_baseline": [lbl for lbl in base_labels if lbl not in cand_labels],
            "labels_only_in_candidate": [lbl for lbl in cand_labels if lbl not in base_labels],
        })


# -- the grid ----------------------------------------------------------------------------------------------
def _unpriced(df: pd.DataFrame) -> pd.Series:
    """Answered model calls without a price (an unknown model): their cost is missing, not zero."""
    return df["status"].isin(VERIFY_STATUSES) & df["cost_usd"].isna() & df["method"].isin(MODEL_METHODS)


def _grid(frame: pd.DataFrame) -> dict[str, Any]:
    """Per method label, the cells (target x length) with the selected test accuracy and every flag."""
    df = with_methods(frame)
    if df.empty:
        return {"targets": [], "lengths": [], "methods": [], "totals": {}}
    trials = summarize_trials(df)
    cells = method_cells(trials, df)
    chosen = trials.dropna(subset=["selected_attempt"])[[*METHOD_KEYS, "trial", "selected_attempt"]]
    chosen = chosen.rename(columns={"selected_attempt": "attempt"}).astype({"attempt": "int64", "trial": "int64"})
    keyed = df.astype({"attempt": "int64", "trial": "int64", "length": "int64"})
    selected = keyed.merge(chosen.astype({"length": "int64"}), on=[*METHOD_KEYS, "trial", "attempt"], how="inner")
    # Where a limit stopped the selected candidate: limit_split says so when the ledger records it; otherwise
    # a limit status with a test score means it ran on test and hit the limit there, without one it never got there.
    split = selected["limit_split"] if "limit_split" in selected else pd.Series(None, index=selected.index)
    inferred = split.isna() & selected["status"].isin(LIMIT_STATUSES)
    limit_test = split.eq("test") | (inferred & selected["test_acc"].notna())
    limit_other = (split.notna() & ~split.eq("test")) | (inferred & selected["test_acc"].isna())
    flags_selected = selected.assign(limit_test=limit_test, limit_other=limit_other).groupby(METHOD_KEYS).agg(
        limit_test=("limit_test", "sum"), limit_other=("limit_other", "sum"))
    flags_rows = df.assign(
        truncated_=df["truncated"].eq(True) if "truncated" in df else False,
        unpriced_=_unpriced(df),
        failed_=df["status"].eq(PROPOSE_ERROR),
        errors_=~df["method"].isin(SEARCH_METHODS) & ~df["status"].isin(("ok", SKIPPED_BUDGET, PROPOSE_ERROR)),
        skipped_=df["status"].eq(SKIPPED_BUDGET),
        ok_=df["status"].eq("ok"),
        reused_=df["reused_answer"].eq(True) if "reused_answer" in df else False,
    ).groupby(METHOD_KEYS).agg(
        attempts=("attempt", "size"), truncated=("truncated_", "sum"), unpriced=("unpriced_", "sum"),
        failed_calls=("failed_", "sum"), errors=("errors_", "sum"), skipped_budget=("skipped_", "sum"),
        ok=("ok_", "sum"), reused=("reused_", "sum"),
        cost_usd=("cost_usd", lambda c: c.sum(min_count=1)),
    )
    flags = flags_rows.join(flags_selected, how="left").fillna({"limit_test": 0, "limit_other": 0})
    methods = []
    method_names = dict(df[["method_label", "method"]].drop_duplicates().itertuples(index=False))
    for label in labels(df):
        mine = cells[cells["method_label"] == label]
        out = []
        for cell in mine.to_dict("records"):
            key = (label, cell["target"], cell["length"])
            f = flags.loc[key].to_dict() if key in flags.index else {}
            out.append({
                "target": cell["target"], "target_name": cell["target_name"], "length": int(cell["length"]),
                "test_mean": cell["test_mean"], "test_std": cell["test_std"],
                "test_ci_low": cell["test_ci_low"], "test_ci_high": cell["test_ci_high"],
                "trials": cell["trials"], "trials_scored": cell["trials_scored"], "n_train": cell["n_train"],
                "attempts": int(f.get("attempts", 0)), "ok": int(f.get("ok", 0)), "cost_usd": f.get("cost_usd"),
                "flags": {name: int(f.get(name, 0)) for name in (
                    "limit_test", "limit_other", "truncated", "unpriced", "failed_calls", "errors",
                    "skipped_budget", "reused")},
            })
        methods.append({"label": label, "method": method_names[label], "cells": out,
                        "n_train": sorted({c["n_train"] for c in out if c["n_train"] is not None})})
    totals = flags[["attempts", "truncated", "unpriced", "failed_calls", "errors", "skipped_budget",
                    "limit_test", "limit_other", "reused"]].sum().astype(int).to_dict()
    return {
        "targets": sorted(df["target"].unique(), key=natural_key),
        "lengths": sorted(int(v) for v in df["length"].unique()),
        "target_names": dict(df[["target", "target_name"]].dropna().drop_duplicates("target").itertuples(index=False)),
        "methods": methods,
        "totals": totals,
    }


def signature_groups(rows: pd.DataFrame) -> tuple[list[dict], dict[str, str]]:
    """Attempts of a cell that behave alike (the same validation predictions): groups named A, B, ... by size,
    only for signatures that more than one attempt shares; and {signature: group name}."""
    if "signature" not in rows:
        return [], {}
    signed = rows[rows["signature"].notna()]
    sizes = signed.groupby("signature").size()
    shared = sizes[sizes > 1].sort_values(ascending=False, kind="stable")
    groups, group_of = [], {}
    for i, (signature, size) in enumerate(shared.items()):
        name = _group_name(i)
        members = signed[signed["signature"] == signature].sort_values(["trial", "attempt"])
        group_of[signature] = name
        groups.append({
            "group": name, "signature": signature, "size": int(size),
            "members": [[int(t), int(a)] for t, a in zip(members["trial"], members["attempt"], strict=True)],
            "val_acc": _num(members["val_acc"].iloc[0]), "test_acc": _num(members["test_acc"].iloc[0]),
        })
    return groups, group_of


def _group_name(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < 26 else f"G{i + 1}"


def _attempt_summary(row: dict, selected_attempt: int | None, group_of: dict[str, str]) -> dict:
    error = row.get("first_error") or row.get("propose_error")
    if isinstance(error, str) and len(error) > FIRST_ERROR_CHARS:
        error = error[: FIRST_ERROR_CHARS - 1] + "…"
    keep = ("attempt", "status", "train_acc", "val_acc", "test_acc", "prompt_tokens", "completion_tokens",
            "reasoning_tokens", "cached_tokens", "cost_usd", "latency_s", "signature", "truncated", "finish_reason",
            "limit_split", "reused_answer", "stopped_early", "code_lines", "ast_nodes", "selected", "model",
            "response_model", "n_train", "created_at")
    out = {k: row.get(k) for k in keep if k in row}
    out["first_error"] = error
    out["selected_by_rule"] = selected_attempt is not None and int(row["attempt"]) == selected_attempt
    out["group"] = group_of.get(row.get("signature"))
    return out


# -- state, leakage, Prefect ----------------------------------------------------------------------------------
def _marker_alive(marker: Path) -> bool:
    return marker_alive(marker)  # see results.progress

def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def _markers(run_dir: Path) -> list[Path]:
    return sorted((run_dir / ledger.ATTEMPTS_DIR).glob("**/*.running"))


def _markers_signature(run_dir: Path) -> tuple:
    return tuple((str(m), _marker_alive(m)) for m in _markers(run_dir))


def run_state(run_dir: Path, frame: pd.DataFrame) -> dict[str, str]:
    """running | failed | complete | incomplete, and a line saying why.

    The manifest's cells and results.progress.cell_statuses say what is planned and done; a live running
    marker anywhere under attempts/ means a trial is in flight. When cell_statuses finds none of the ledger's
    files (a manifest without cells, or a run from before the methods axis) the ledger rows decide.
    """
    live = sum(_marker_alive(m) for m in _markers(run_dir))
    statuses = cell_statuses(run_dir)
    known = [s for s in statuses if s.state != "missing" or s.trials_done]
    if statuses and (known or frame.empty):
        counts: dict[str, int] = {}
        for s in statuses:
            counts[s.state] = counts.get(s.state, 0) + 1
        detail = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + " cell(s)"
        failed = sum(s.failed_attempts for s in statuses)
        if live or counts.get("running"):
            state = "running"
        elif failed:
            state, detail = "failed", f"{failed} failed call(s); " + detail
        elif counts.get("done") == len(statuses):
            state = "complete"
        else:
            state = "incomplete"
        return {"state": state, "detail": detail}
    if frame.empty:
        return {"state": "running" if live else "incomplete", "detail": "no finished trial yet"}
    per_file = frame.groupby(FILE_COLUMN)["status"].agg(lambda s: bool(UNFINISHED.intersection(s)))
    failed = int(frame["status"].eq(PROPOSE_ERROR).sum())
    detail = f"{len(per_file)} trial file(s), {int(per_file.sum())} unfinished"
    if live:
        return {"state": "running", "detail": f"{live} trial(s) in flight; " + detail}
    if failed:
        return {"state": "failed", "detail": f"{failed} failed call(s); " + detail}
    return {"state": "incomplete" if per_file.any() else "complete", "detail": detail}


def _newest_trial_mtime(run_dir: Path) -> int:
    return max((sig[0] for sig in trial_files(run_dir).values()), default=0)


def leakage_verdict(run_dir: Path, newest_trial_ns: int) -> dict[str, Any]:
    """The analysis's leakage verdict (report/leakage_findings.parquet), or "not analysed"."""
    path = run_dir / ledger.REPORT_DIR / LEAKAGE_FILE
    if not path.exists():
        return {"status": "not analysed", "leaks": 0, "warnings": 0, "findings": [], "by_cell": {}, "stale": False}
    findings = pd.read_parquet(path)
    records = findings.to_dict("records")
    by_cell: dict[str, dict[str, int]] = {}
    for f in records:
        entry = by_cell.setdefault(f"{f['target']}|{int(f['length'])}", {"leaks": 0, "warnings": 0})
        entry["leaks" if f["severity"] == "leak" else "warnings"] += 1
    leaks = sum(1 for f in records if f["severity"] == "leak")
    return {
        "status": "failed" if leaks else "passed",
        "leaks": leaks,
        "warnings": len(records) - leaks,
        "findings": jsonable(records),
        "by_cell": by_cell,
        "stale": path.stat().st_mtime_ns < newest_trial_ns,  # trials finished after the analysis
    }


def prefect_link(manifest: dict[str, Any]) -> str | None:
    """The run's flow run in the Prefect UI, when the manifest records one (http(s) URLs only)."""
    prefect = manifest.get("prefect") or {}
    ui, flow_run = prefect.get("ui_url"), prefect.get("flow_run_id")
    if not ui or not flow_run or not re.match(r"^https?://", str(ui)):
        return None
    if not re.fullmatch(r"[0-9A-Za-z-]+", str(flow_run)):
        return None
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run}"


def _newest_trial_iso(run_dir: Path) -> str | None:
    newest = _newest_trial_mtime(run_dir)
    return datetime.fromtimestamp(newest / 1e9, UTC).isoformat(timespec="seconds") if newest else None


def _first_time(df: pd.DataFrame) -> str | None:
    if "created_at" not in df or df["created_at"].isna().all():
        return None
    return pd.Timestamp(df["created_at"].min()).isoformat()


def check_results_dir(results_dir: Path) -> Path:
    if not Path(results_dir).is_dir():
        raise UsageError(f"no results directory {results_dir}: pass --results-dir where the runs are")
    return Path(results_dir)

"""Leakage checks over the datasets and candidates of a run (plain Python, no Prefect).

Leakage means held-out information reaching the learner. It fails the run (LeakageReport.ok False):
- `split_overlap`: an input string in two splits of one dataset store (must be 0);
- `duplicate_inputs` in train or val (each must hold distinct inputs);
- `heldout_input_in_code`: a candidate whose code contains a validation or test input it was never shown;
Reported, not failing (`severity == "warning"`):
- `dataset_not_checked`: a dataset the run used cannot be read here (missing, moved without its run, or
  malformed), or a cell's rows name no dataset. Its splits are not checked: that is said (the analysis
  says "not checked", never "passed", for it), but it is no evidence of a leak: a run copied without its
  datasets must not read as one that leaked (llm_erm.analysis.locate finds or rebuilds moved datasets).
- `training_input_in_code`: a candidate that hard-codes a training input. The model was shown it, so it is
  memorisation rather than leakage: validation and test accuracy already measure what it is worth.
- `test_duplicates`: test may repeat an input only in tiny input spaces (llm_erm/datasets/splits.py); the count is shown.

An input "appears in the code" when the whole input string, at least MIN_LITERAL_CHARS long, is a
substring of the candidate's code.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

SPLITS = ("train", "val", "test")
MIN_LITERAL_CHARS = 8
MAX_EXAMPLES = 3  # inputs quoted in a finding's detail
LEAK, WARNING = "leak", "warning"
NOT_CHECKED = "dataset_not_checked"
DATASET_COLUMNS = (
    ["dataset_path", "target", "length"]
    + [f"{split}_{what}" for what in ("size", "distinct") for split in SPLITS]
    + [f"{split}_duplicates" for split in SPLITS]
    + ["overlap_train_val", "overlap_train_test", "overlap_val_test"]
)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str  # LEAK fails the run, WARNING is reported only
    dataset_path: str
    target: str
    length: int
    count: int
    detail: str  # one line a person can act on
    trial: int | None = None
    attempt: int | None = None


@dataclass
class LeakageReport:
    findings: list[Finding] = field(default_factory=list)
    datasets: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per dataset store checked
    candidates_checked: int = 0

    @property
    def ok(self) -> bool:
        return not any(f.severity == LEAK for f in self.findings)

    @property
    def leaks(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == LEAK]

    def verdict(self) -> str:
        """One phrase: passed, FAILED (leaks), or incomplete (datasets not checked) - never 'passed' for those."""
        if not self.ok:
            return f"FAILED: {len(self.leaks)} leakage finding(s)"
        if self.not_checked:
            return (f"incomplete: no leakage found, but {len(self.not_checked)} dataset(s) not checked "
                    "(unreadable; pass --datasets-dir)")
        return "leakage check passed"

    @property
    def not_checked(self) -> list[Finding]:
        """Datasets whose splits could not be read: neither clean nor leaked."""
        return [f for f in self.findings if f.kind == NOT_CHECKED]

    def findings_frame(self) -> pd.DataFrame:
        columns = list(Finding.__dataclass_fields__)
        return pd.DataFrame([asdict(f) for f in self.findings], columns=columns).astype(
            {"trial": "Int64", "attempt": "Int64"}
        )


def read_split(path: Path) -> list[str]:
    """The inputs of one split file of `<input> -> <label>` lines; ValueError naming the bad line."""
    parsed = [line.rpartition(" -> ") for line in path.read_text(encoding="utf-8").splitlines()]
    for number, (_, sep, label) in enumerate(parsed, 1):
        if not sep or label not in ("0", "1"):
            raise ValueError(f"{path}:{number} is not an '<input> -> <label>' line")
    return [text for text, _, _ in parsed]


def _check_dataset(path: str, target: str, length: int) -> tuple[dict, list[Finding], dict[str, list[str]]]:
    """Overlap and duplicate counts of one store, its findings, and its inputs per split."""
    splits = {name: read_split(Path(path) / f"{name}.txt") for name in SPLITS}
    distinct = {name: set(inputs) for name, inputs in splits.items()}
    row: dict = {"dataset_path": path, "target": target, "length": length}
    findings = []
    for name in SPLITS:
        row[f"{name}_size"] = len(splits[name])
    for name in SPLITS:
        row[f"{name}_distinct"] = len(distinct[name])
    for name in SPLITS:
        repeats = Counter(splits[name])
        duplicates = sorted(x for x, n in repeats.items() if n > 1)
        row[f"{name}_duplicates"] = len(splits[name]) - len(distinct[name])
        if duplicates:
            severity = WARNING if name == "test" else LEAK
            kind = "test_duplicates" if name == "test" else "duplicate_inputs"
            findings.append(
                Finding(kind, severity, path, target, length, row[f"{name}_duplicates"],
                        f"{name} repeats {len(duplicates)} input(s), e.g. {_examples(duplicates)}")
            )
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = sorted(distinct[a] & distinct[b])
        row[f"overlap_{a}_{b}"] = len(shared)
        if shared:
            findings.append(
                Finding("split_overlap", LEAK, path, target, length, len(shared),
                        f"{len(shared)} input(s) in both {a} and {b}, e.g. {_examples(shared)}")
            )
    return row, findings, splits


def _examples(inputs: list[str]) -> str:
    shown = ", ".join(repr(x if len(x) <= 40 else x[:37] + "...") for x in inputs[:MAX_EXAMPLES])
    return shown + (" ..." if len(inputs) > MAX_EXAMPLES else "")


class _LiteralFinder:
    """Finds which inputs of a dataset occur whole inside a piece of code.

    Rather than testing each of ~10 000 inputs against each candidate, it takes the runs of the inputs'
    own characters in the code and looks up every window of an input's length in a dict.
    """

    def __init__(self, splits: dict[str, list[str]]):
        self.split_of: dict[str, str] = {}
        for name in reversed(SPLITS):  # an input in several splits (already a leak) reports its earliest
            for x in splits[name]:
                if len(x) >= MIN_LITERAL_CHARS:
                    self.split_of[x] = name
        self.lengths = sorted({len(x) for x in self.split_of})
        alphabet = "".join(sorted(set("".join(self.split_of))))
        self.runs = re.compile(f"[{re.escape(alphabet)}]{{{MIN_LITERAL_CHARS},}}") if alphabet else None

    def find(self, code: str) -> dict[str, list[str]]:
        """{split: inputs of that split found in the code}."""
        found: dict[str, set[str]] = {}
        if self.runs is None:
            return {}
        for run in self.runs.findall(code):
            for n in self.lengths:
                for i in range(len(run) - n + 1):
                    split = self.split_of.get(run[i : i + n])
                    if split:
                        found.setdefault(split, set()).add(run[i : i + n])
        return {split: sorted(inputs) for split, inputs in found.items()}


def check_leakage(source: pd.DataFrame | Path | str) -> LeakageReport:
    """Check every dataset the run used and every candidate's code (see the module doc).

    `source` is a run directory or its attempt rows (a DataFrame with the ledger columns).
    """
    if isinstance(source, str | Path):
        from llm_erm.results.ledger import read_attempts

        source = read_attempts(Path(source)).to_pandas()
    attempts = source
    report = LeakageReport()
    rows = []
    used = attempts[attempts["dataset_path"].notna()]
    unnamed = attempts.groupby(["target", "length"])["dataset_path"].count()
    for target, length in unnamed[unnamed == 0].index:
        report.findings.append(
            Finding(NOT_CHECKED, WARNING, "", target, int(length), 1,
                    "no attempt of this cell records its dataset_path, so its splits cannot be checked")
        )
    for (path, target, length), candidates in used.groupby(["dataset_path", "target", "length"], sort=True):
        length = int(length)
        try:
            row, findings, splits = _check_dataset(path, target, length)
        except (OSError, ValueError) as exc:
            report.findings.append(
                Finding(NOT_CHECKED, WARNING, path, target, length, 1,
                        f"not checked: cannot read the dataset store: {exc}")
            )
            continue
        rows.append(row)
        report.findings.extend(findings)
        finder = _LiteralFinder(splits)
        for trial, attempt, code in candidates[["trial", "attempt", "code"]].itertuples(index=False):
            if not isinstance(code, str) or not code:
                continue
            report.candidates_checked += 1
            for split, inputs in finder.find(code).items():
                kind, severity = (
                    ("training_input_in_code", WARNING) if split == "train" else ("heldout_input_in_code", LEAK)
                )
                report.findings.append(
                    Finding(kind, severity, path, target, length, len(inputs),
                            f"trial {trial} attempt {attempt} hard-codes {len(inputs)} {split} input(s), "
                            f"e.g. {_examples(inputs)}",
                            trial=int(trial), attempt=int(attempt))
                )
    report.datasets = pd.DataFrame(rows, columns=DATASET_COLUMNS)
    return report

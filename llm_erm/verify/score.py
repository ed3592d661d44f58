"""Verify one candidate: extract, sanitise, run in the sandbox, score against the labels.

The labels stay here, in the orchestrator; the sandbox only ever sees inputs. Validation runs first,
then train, then test, in one sandboxed process under a CPU allowance per input, so a candidate that
times out on validation never runs on test; `limit_split` says in which split a time or memory limit
stopped it (a stop while the module loads counts as the first split, validation).

Accuracy = correct / all rows of the split. A row without a valid prediction (the call raised, returned
something that is not a 0/1 label, or never ran because the candidate timed out, ran out of memory or
crashed first) counts as wrong. Accuracies are None only when there is no program to run (too_large,
no_code, syntax_error, no_function).

An answer (or, with is_code, a program) over MAX_ANSWER_CHARS is `too_large`: refused before anything
parses it, so its cost to the orchestrator is a length check. Lone surrogates (U+D800..U+DFFF, which an
API may return and no source file can hold) become U+FFFD in the program, as an editor would show them.
"""

from __future__ import annotations

# Standard library only, like the rest of verify/: an orchestrator can verify with a bare interpreter.
import ast
import hashlib
import operator
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Protocol

from llm_erm.verify.extract import MAX_ANSWER_CHARS, extract_code
from llm_erm.verify.sandbox import Outcome, Sandbox
from llm_erm.verify.sanitize import MAX_PARSE_CHARS, PARSE_ERRORS, strip_outer_fence, try_sanitize

if TYPE_CHECKING:
    from llm_erm.datasets import Dataset

NO_PROGRAM = ("too_large", "no_code", "syntax_error", "no_function")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # statuses without any accuracy
SPLITS = ("val", "train", "test")  # the order they run in
# Decision points (McCabe style): each adds one to `branches`; `and`/`or` add one per extra operand.
BRANCH_NODES = (
    ast.If, ast.IfExp, ast.For, ast.AsyncFor, ast.While, ast.ExceptHandler, ast.match_case,
    ast.comprehension,
)


class LabelledInputs(Protocol):
    """A split: what `llm_erm.datasets.Split` provides."""

    inputs: list[str]
    labels: list[int]


@dataclass
class CandidateResult:
    status: str  # ok | too_large | no_code | syntax_error | no_function | runtime_errors | timeout | memory | crashed
    code: str | None  # the program that ran (sanitised when `sanitized`)
    sanitized: bool
    train_acc: float | None
    val_acc: float | None
    test_acc: float | None
    val_errors: int  # rows without a valid prediction (raised, invalid, never ran)
    test_errors: int
    first_error: str | None
    limit_split: str | None  # val | train | test: where a time or memory limit stopped it
    code_lines: int | None  # non-blank lines of `code`
    ast_nodes: int | None
    branches: int | None
    signature: str | None  # sha256 of the validation marks: equal behaviour, equal signature
    sandbox: str  # bwrap | rlimit

    def to_row(self) -> dict:
        """The matching columns of the attempts ledger (llm_erm/results/schema.py)."""
        return asdict(self)


def verify_candidate(
    text: str, dataset: Dataset, sandbox: Sandbox, *, sanitize: bool = True, is_code: bool = False
) -> CandidateResult:
    """Score the program in a model's answer `text` (or, with is_code, `text` itself) on a dataset."""
    return verify_splits(
        text, dataset.split("train"), dataset.split("val"), dataset.split("test"), sandbox,
        sanitize=sanitize, is_code=is_code,
    )


def verify_splits(
    text: str,
    train: LabelledInputs,
    val: LabelledInputs,
    test: LabelledInputs,
    sandbox: Sandbox,
    *,
    sanitize: bool = True,
    is_code: bool = False,
) -> CandidateResult:
    """verify_candidate on explicit splits (anything with `.inputs` and `.labels`)."""
    if len(text) > MAX_ANSWER_CHARS:
        return CandidateResult(
            "too_large", None, False, None, None, None, 0, 0,
            f"the {'program' if is_code else 'answer'} has {len(text)} characters, over the bound of "
            f"{MAX_ANSWER_CHARS}", None, None, None, None, None, sandbox.mode,
        )
    code = text if is_code else extract_code(text)
    if code is not None:
        code = LONE_SURROGATE.sub("\ufffd", code)
    if code is None:
        return CandidateResult(
            "no_code", None, False, None, None, None, 0, 0, "no code found in the answer", None,
            None, None, None, None, sandbox.mode,
        )
    clean = try_sanitize(code) if sanitize else None
    sanitized = clean is not None
    code = clean if sanitized else strip_outer_fence(code)
    lines, nodes, branches = measure(code)
    run = sandbox.run_batches(code, [val.inputs, train.inputs, test.inputs])
    val_outcome, train_outcome, test_outcome = run.outcomes
    loaded = run.status not in NO_PROGRAM
    return CandidateResult(
        status=run.status,
        code=code,
        sanitized=sanitized,
        train_acc=accuracy(train_outcome, _marks(train)) if loaded else None,
        val_acc=accuracy(val_outcome, _marks(val)) if loaded else None,
        test_acc=accuracy(test_outcome, _marks(test)) if loaded else None,
        val_errors=val_outcome.errors if loaded else 0,
        test_errors=test_outcome.errors if loaded else 0,
        first_error=run.first_error,
        limit_split=SPLITS[run.limit_batch] if run.limit_batch is not None else None,
        code_lines=lines,
        ast_nodes=nodes,
        branches=branches,
        signature=signature(val_outcome) if loaded else None,
        sandbox=run.sandbox,
    )


def _marks(split: LabelledInputs) -> list[int] | str:
    return getattr(split, "label_marks", None) or split.labels


def accuracy(outcome: Outcome, labels: list[int] | str) -> float | None:
    """Share of rows whose prediction equals the label; None for an empty split. `labels` may be given as
    their '0'/'1' string (Split.label_marks), which compares in one vectorised step."""
    if len(outcome.marks) != len(labels):
        raise ValueError(f"{len(outcome.marks)} predictions for {len(labels)} labels")
    if not labels:
        return None
    expected = labels if isinstance(labels, str) else "".join("1" if y else "0" for y in labels)
    # a mark equal to the label's character is a right prediction ("E", "I", "-" never are); compared in C
    return sum(map(operator.eq, outcome.marks, expected)) / len(labels)


def signature(outcome: Outcome) -> str:
    return hashlib.sha256(outcome.marks.encode()).hexdigest()


def measure(code: str) -> tuple[int | None, int | None, int | None]:
    """(non-blank lines, AST nodes, branches) of the code; sizes are None when it does not parse."""
    lines = sum(1 for line in code.splitlines() if line.strip())
    if len(code) > MAX_PARSE_CHARS:
        return lines, None, None
    try:
        tree = ast.parse(code)
    except PARSE_ERRORS:
        return lines, None, None
    nodes = branches = 0
    for node in ast.walk(tree):
        nodes += 1
        if isinstance(node, BRANCH_NODES):
            branches += 1 + (len(node.ifs) if isinstance(node, ast.comprehension) else 0)
        elif isinstance(node, ast.BoolOp):
            branches += len(node.values) - 1
    return lines, nodes, branches

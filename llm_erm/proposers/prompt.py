"""The prompt a proposer is sent: the paper's template, its variants, and user templates.

`render_prompt` is pure (lines in, text out); `build_prompt` feeds it a dataset's training split.
The default text is byte-identical to the paper's for binary and decimal targets.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from llm_erm.errors import UsageError

if TYPE_CHECKING:
    from llm_erm.datasets import Dataset

_STATEMENT_TAIL = (
    "and their corresponding scalar binary outputs ('0' or '1'), find a concise Python function `f(x)` "
    "that accurately approximates the underlying relationship. The function should not be a trainable "
    "model, but a direct logical or mathematical representation of the target function."
)

# How the first sentence names the inputs, per alphabet. Binary and decimal are the paper's words;
# the edge-string wording (graph targets) is ours.
_INPUT_PHRASES = {
    "binary": "Given a sequence of input vectors (binary, length {length}) ",
    "decimal": "Given a sequence of input vectors (decimal, length {length}) ",
    "edges": "Given a sequence of input vectors (edge-list string, length {length}) ",
    "tabular": "Given tabular input data (comma-separated feature:value pairs) ",
}

# The paper's template in our placeholder syntax. Users' templates use the same placeholders.
DEFAULT_TEMPLATE = (
    "**Problem Statement:**\n"
    "{statement}\n"
    "**Data Examples:**\n"
    "```\n"
    "{examples}\n"
    "```\n"
    "\n"
    'You must output ONLY a single JSON object: {"code": "<python function>"}.'
)

PLACEHOLDERS = {
    "statement": "the problem statement sentence of the default prompt",
    "examples": "the training lines '<input> -> <label>', one per line",
    "length": "the input length L",
    "alphabet": "binary, decimal, edges or tabular",
    "n_examples": "the number of training examples",
}

VARIANTS = {
    "explain": (
        "Prefer an interpretable function: short, with descriptive names and a structure that shows "
        "the rule it implements, so that a reader can check the rule by eye."
    ),
    "interview": (
        "After you answer, you will be asked follow-up questions about your function: which thresholds, "
        "positions and constants it uses and why each decision it makes follows from the data. Choose "
        "a rule you can justify that way."
    ),
    "preview": (
        "These examples are a preview of a larger data set drawn the same way. Your function will be "
        "judged on inputs you have not seen, so prefer the general rule over one that merely fits these "
        "examples."
    ),
}

# `{name}` with a Python identifier inside; braces around anything else (a JSON example such as
# {"code": ...}) are ordinary text, so templates need no escaping.
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def check_template(template: str, source: str = "the prompt template") -> None:
    """UsageError naming the first unknown placeholder, or a template that shows no examples."""
    names = _PLACEHOLDER.findall(template)
    unknown = [name for name in names if name not in PLACEHOLDERS]
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise UsageError(f"{source} has an unknown placeholder {{{unknown[0]}}}: use only {known}")
    if "examples" not in names:
        raise UsageError(f"{source} never shows the data: put {{examples}} where the training lines go")


def load_template(path: Path) -> str:
    """Read and check a user template file (before any work starts)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read prompt template {path}: {exc.__class__.__name__}: check the path") from exc
    check_template(text, f"prompt template {path}")
    return text


def render_prompt(
    lines: list[str],
    length: int,
    alphabet: str,
    variant: str | None = None,
    template: str | None = None,
) -> str:
    """The prompt for these training lines (stored order), optionally with a variant suffix."""
    if alphabet not in _INPUT_PHRASES:
        raise UsageError(f"no prompt wording for alphabet {alphabet!r}: use one of {', '.join(_INPUT_PHRASES)}")
    if variant is not None and variant not in VARIANTS:
        raise UsageError(f"unknown prompt variant {variant!r}: use one of {', '.join(VARIANTS)} (or none)")
    if template is None:
        template = DEFAULT_TEMPLATE
    else:
        check_template(template)
    values = {
        "statement": _INPUT_PHRASES[alphabet].format(length=length) + _STATEMENT_TAIL,
        "examples": "\n".join(lines),
        "length": str(length),
        "alphabet": alphabet,
        "n_examples": str(len(lines)),
    }
    text = _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if variant is not None:
        text += "\n\n" + VARIANTS[variant]
    return text


def build_prompt(dataset: Dataset, variant: str | None = None, template: str | None = None) -> str:
    """The prompt for a dataset: its training split only, in stored order."""
    return render_prompt(
        dataset.split("train").lines, dataset.spec.length, dataset.target.alphabet, variant, template
    )

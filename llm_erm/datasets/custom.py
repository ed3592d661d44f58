"""User targets: a Python callable `str -> 0/1` ("module.path:callable"), or a labelled file.

A callable goes through the same registry, generator (uniform strings of its alphabet, accepted
until each class is full) and store as the built-in targets; its source code is hashed into the
dataset id, so editing the function rebuilds its datasets instead of reusing stale labels.

A labelled file (CSV or Parquet with columns `input` and `label`) is a finite pool: its splits are
drawn from the file's rows (still balanced and leak-free), its length is the inputs' length (one
length per file: ragged inputs are refused), and it is known everywhere by a safe, stable name,
`file-<stem>-<content hash>`: the target column of the ledger, every path of the run (attempts, the
store's directory) and the dataset id use that name, never the path the user typed (which may hold
slashes, `..`, or point beside the user's data), so a run does not depend on where the file was.
The name resolves back to the file in the process that loaded it (`resolve_target`).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import re
import sys
from functools import cache
from pathlib import Path

from llm_erm.datasets.targets import DEFAULT_LENGTHS, Target
from llm_erm.errors import UsageError

USER_ALPHABETS = ("binary", "decimal")


@cache
def load_callable_target(spec: str, alphabet: str = "binary") -> Target:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"user target {spec!r} must look like 'module.path:callable'")
    if alphabet not in USER_ALPHABETS:
        raise UsageError(f"user target alphabet must be one of {', '.join(USER_ALPHABETS)}, got {alphabet!r}")
    # Like `python -m`, find user modules in the working directory (console scripts do not).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a usage problem
        raise UsageError(
            f"cannot import module {module_name!r} for user target {spec!r} ({type(exc).__name__}: {exc}); "
            "make it importable (run from its directory, set PYTHONPATH, or install it)"
        ) from None
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r} (user target {spec!r})")
    if not callable(obj):
        raise UsageError(f"user target {spec!r} is not callable")
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        source = f"{module_name}:{attr}"

    def label(x: str, _f=obj) -> int:
        try:
            value = _f(x)
        except Exception as exc:
            raise UsageError(f"user target {spec} raised {type(exc).__name__} on {x!r}: {exc}") from None
        if isinstance(value, bool) or value in (0, 1):
            return int(value)
        raise UsageError(f"user target {spec} returned {value!r} for {x!r}: it must return 0/1 or a bool")

    source_sha = hashlib.sha256(source.encode()).hexdigest()
    return Target(
        id=spec,
        name=f"{module_name}.{attr}",
        alphabet=alphabet,
        default_lengths=DEFAULT_LENGTHS,
        label=label,
        description=f"user target {spec}",
        params=lambda length: {"source_sha256": source_sha},
    )


FILE_ALPHABETS = ("binary", "decimal", "tabular")
FILE_PREFIX = "file-"
_LOADED_FILES: dict[str, tuple[str, str | None]] = {}  # safe name -> (the file's spec, the alphabet asked for)


def file_target_name(path: Path, content_sha: str) -> str:
    """`file-<stem>-<12 hex of the content hash>`: letters, digits, `._-` only (a path component anywhere)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._") or "data"
    return f"{FILE_PREFIX}{stem[:40]}-{content_sha[:12]}"


def loaded_file_target(name: str) -> Target:
    """The labelled-file target a safe name stands for, if this process loaded it; else a UsageError."""
    if name not in _LOADED_FILES:
        raise UsageError(f"target {name!r} is a labelled file this process has not read: name the file itself "
                         "(--functions path/to/file.csv)")
    return load_file_target(*_LOADED_FILES[name])


def file_spec(name: str) -> str:
    """What the user named a loaded file target by (its path), for a process that must read it again."""
    return _LOADED_FILES[name][0] if name in _LOADED_FILES else name
TABULAR_ROW = re.compile(r"[^,:]+:[^,]*(,[^,:]+:[^,]*)*")


def _read_table(path: Path) -> tuple[list, list]:
    import pyarrow.csv
    import pyarrow.parquet

    try:
        if path.suffix.lower() == ".parquet":
            table = pyarrow.parquet.read_table(path)
        else:
            # Inputs such as "0101" must stay strings, not become numbers.
            options = pyarrow.csv.ConvertOptions(column_types={"input": pyarrow.string()})
            table = pyarrow.csv.read_csv(path, convert_options=options)
    except (OSError, pyarrow.ArrowInvalid) as exc:
        raise UsageError(f"cannot read labelled file {path}: {exc}") from None
    missing = {"input", "label"} - set(table.column_names)
    if missing:
        raise UsageError(f"labelled file {path} needs columns 'input' and 'label' (missing: {', '.join(sorted(missing))})")
    return table.column("input").to_pylist(), table.column("label").to_pylist()


def _infer_alphabet(inputs: list[str], path: Path) -> str:
    if all(set(x) <= set("01") for x in inputs):
        return "binary"
    if all(x.isdigit() for x in inputs):
        return "decimal"
    if all(TABULAR_ROW.fullmatch(x) for x in inputs):
        return "tabular"
    raise UsageError(f"labelled file {path}: inputs are not binary, decimal or 'k:v,...' rows; pass --alphabet")


@cache
def load_file_target(spec: str, alphabet: str | None = None) -> Target:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UsageError(f"labelled file {spec!r} not found: give the path of a CSV or Parquet file")
    inputs, labels = _read_table(path)
    truth: dict[str, int] = {}
    for x, y in zip(inputs, labels, strict=True):
        if x is None or y not in (0, 1, True, False):
            raise UsageError(f"labelled file {path}: every row needs an input and a 0/1 label, got {x!r} -> {y!r}")
        if "\n" in str(x) or " -> " in str(x):
            raise UsageError(f"labelled file {path}: input {str(x)[:40]!r} contains a newline or ' -> '")
        if truth.setdefault(str(x), int(y)) != int(y):
            raise UsageError(f"labelled file {path}: input {x!r} appears with both labels")
    if not truth:
        raise UsageError(f"labelled file {path} has no rows: it needs an 'input' and a 'label' per row")
    asked = alphabet
    alphabet = alphabet or _infer_alphabet(list(truth), path)
    if alphabet not in FILE_ALPHABETS:
        raise UsageError(f"labelled file alphabet must be one of {', '.join(FILE_ALPHABETS)}, got {alphabet!r}")
    lengths = sorted({len(x) for x in truth})
    if alphabet != "tabular" and len(lengths) > 1:  # a string target has one length: the prompt says so
        short = min(truth, key=len)
        raise UsageError(f"labelled file {path}: inputs have {len(lengths)} different lengths ({lengths[0]} to "
                         f"{lengths[-1]}, e.g. {short!r}): give every input the same length (one file per length)")
    length = lengths[-1]
    content_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    name = file_target_name(path, content_sha)
    _LOADED_FILES[name] = (spec, asked)

    def label(x: str) -> int:
        if x not in truth:
            raise ValueError(f"{x!r} is not an input of labelled file {path}")
        return truth[x]

    def check_length(requested: int) -> None:
        if requested != length:
            raise UsageError(f"labelled file {path} has inputs of length {length}: use --lengths {length}")

    # Sorted pools: the file's row order must not change the data drawn from it.
    negatives = tuple(sorted(x for x, y in truth.items() if y == 0))
    positives = tuple(sorted(x for x, y in truth.items() if y == 1))
    return Target(
        id=name,
        name=name,
        alphabet=alphabet,
        default_lengths=(length,),
        label=label,
        description=f"labelled file {path} ({len(truth)} distinct inputs)",
        params=lambda _length: {"file_sha256": content_sha, "file_name": path.name},
        check_length=check_length,
        examples=(negatives, positives),
    )

"""User targets: a Python callable `str -> 0/1` ("module.path:callable"), or a labelled file.

A callable goes through the same registry, generator (uniform strings of its alphabet, accepted
until each class is full) and store as the built-in targets; its source code is hashed into the
dataset id, so editing the function rebuilds its datasets instead of reusing stale labels.

A labelled file (CSV or Parquet with columns `input` and `label`) is a finite pool: its splits are
drawn from the file's rows (still balanced and leak-free), its length is the inputs' length, and
its content hash is part of the dataset id and of the store's directory name.
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
    alphabet = alphabet or _infer_alphabet(list(truth), path)
    if alphabet not in FILE_ALPHABETS:
        raise UsageError(f"labelled file alphabet must be one of {', '.join(FILE_ALPHABETS)}, got {alphabet!r}")
    length = max(map(len, truth))
    content_sha = hashlib.sha256(path.read_bytes()).hexdigest()

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
        id=spec,
        name=f"file-{path.stem}-{content_sha[:8]}",
        alphabet=alphabet,
        default_lengths=(length,),
        label=label,
        description=f"labelled file {path} ({len(truth)} distinct inputs)",
        params=lambda _length: {"file_sha256": content_sha, "file_name": path.name},
        check_length=check_length,
        examples=(negatives, positives),
    )

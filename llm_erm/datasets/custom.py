"""User targets: a Python callable `str -> 0/1` named as "module.path:callable".

A user target goes through the same registry, generator (uniform strings of its alphabet, accepted
until each class is full) and store as the built-in ones. Its source code is hashed into the
dataset id, so editing the function rebuilds its datasets instead of reusing stale labels.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from functools import cache

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
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of user code is a usage problem
        raise UsageError(
            f"cannot import module {module_name!r} for user target {spec!r} ({type(exc).__name__}: {exc}); "
            "make it importable (install it, or run from its directory / set PYTHONPATH)"
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
        value = _f(x)
        if isinstance(value, bool) or value in (0, 1):
            return int(value)
        raise ValueError(f"user target {spec} returned {value!r} for {x!r}; it must return 0/1 or a bool")

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

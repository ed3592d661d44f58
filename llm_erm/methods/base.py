"""What every learner takes and returns, and the settings schema each learner validates against.

Plain Python (no numpy, torch or scikit-learn here), so the engine can import it cheaply.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from llm_erm.errors import UsageError

Row = str | Mapping[str, Any]  # a string of symbols ('0'/'1', digits, ...) or a tabular row (a dict)


@dataclass(frozen=True)
class LabelledData:
    """Inputs with their 0/1 labels, in a fixed order.

    `parts` are the sizes of the pieces `concat` joined (train, val), so a learner that follows a protocol
    fitting on the train split alone (classical's `protocol: paper`) can take the first piece."""

    inputs: Sequence[Row]
    labels: Sequence[int]
    parts: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")
        for y in self.labels:
            if y not in (0, 1) or isinstance(y, float):
                raise ValueError(f"labels must be 0/1 ints, got {y!r}")
        if self.parts and sum(self.parts) != len(self.labels):
            raise ValueError(f"parts {self.parts} do not add up to {len(self.labels)} examples")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def concat(cls, *parts: LabelledData) -> LabelledData:
        """The parts one after another (train + val for the baselines), their sizes kept in `parts`."""
        return cls([x for p in parts for x in p.inputs], [y for p in parts for y in p.labels],
                   tuple(len(p) for p in parts))

    def first_part(self) -> LabelledData:
        """The first piece `concat` joined (the train split of train + val); all of it when not joined."""
        n = self.parts[0] if self.parts else len(self)
        return LabelledData(list(self.inputs[:n]), list(self.labels[:n]))

    @classmethod
    def of(cls, split: Any) -> LabelledData:
        """From anything with `.inputs` and `.labels` (a datasets `Split`)."""
        return cls(list(split.inputs), [int(y) for y in split.labels])


@dataclass
class LearnerResult:
    """One learner trained on one cell and scored on its test split."""

    method: str
    train_acc: float  # on the training data it was fit on (train + val for the baselines)
    test_acc: float
    train_seconds: float  # classical: featurise + fit + predict train; sgd/finetune: optimizer steps only
    predict_seconds: float  # predicting the whole test split once with the final model
    settings: dict[str, Any]  # every setting actually used, defaults filled in
    device: str  # "cpu", "cuda:0 (NVIDIA H200)", ...
    n_train: int
    n_test: int
    n_params: int | None = None  # model parameters where meaningful (torch models, MLP weights)
    n_trainable: int | None = None  # those that were trained (finetune freezes most)
    eval_seconds: float = 0.0  # the curve's intermediate evaluations (sgd/finetune)
    curve: list[dict[str, Any]] = field(default_factory=list)  # per epoch (sgd/finetune); [] for classical
    info: dict[str, Any] = field(default_factory=dict)  # learner facts: features, versions, threads, ...
    test_predictions: list[int] = field(default_factory=list, repr=False)  # 0/1 per test input, in order

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.eval_seconds + self.predict_seconds

    def to_dict(self, predictions: bool = False) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = self.seconds
        if not predictions:
            out.pop("test_predictions")
        return out


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """One setting a learner accepts: its default and a check that returns the normalised value.

    `check` raises ValueError("must be ...") for a bad value; the schema turns it into a UsageError
    that names the learner, the key and the fix.
    """

    default: Any
    check: Callable[[Any], Any]
    help: str = ""


def _reject_bool(value: Any, what: str) -> None:
    if isinstance(value, bool):
        raise ValueError(f"must be {what}")


def _parse_number(value: Any, kind: type) -> Any:
    """Numbers may arrive as strings from a command line: accept "3", "1e-3"."""
    if isinstance(value, str):
        try:
            return kind(value) if kind is float else int(value, 10)
        except ValueError:
            return value
    return value


def positive_int(value: Any) -> int:
    value = _parse_number(value, int)
    _reject_bool(value, "a positive integer")
    if not isinstance(value, int) or value < 1:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(value: Any) -> int:
    value = _parse_number(value, int)
    _reject_bool(value, "an integer >= 0")
    if not isinstance(value, int) or value < 0:
        raise ValueError("must be an integer >= 0")
    return value


def optional_positive_int(value: Any) -> int | None:
    if value is None or value == "none":
        return None
    try:
        return positive_int(value)
    except ValueError:
        raise ValueError("must be a positive integer or null") from None


def positive_float(value: Any) -> float:
    value = _parse_number(value, float)
    _reject_bool(value, "a positive number")
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return float(value)


def non_negative_float(value: Any) -> float:
    value = _parse_number(value, float)
    _reject_bool(value, "a number >= 0")
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError("must be a number >= 0")
    return float(value)


def fraction(value: Any) -> float:
    value = positive_float(value)
    if value > 1:
        raise ValueError("must be a number in (0, 1]")
    return value


def boolean(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def choice(*options: Any) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        # type-exact: True must not pass for 1, nor 1 for True
        if not any(value == o and type(value) is type(o) for o in options):
            raise ValueError("must be one of " + ", ".join(repr(o) for o in options))
        return value

    return check


def int_tuple(value: Any) -> tuple[int, ...]:
    """A non-empty list of positive integers (layer sizes); "64,32" from a command line too."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("must be a non-empty list of positive integers, e.g. [64, 32]")
    try:
        return tuple(positive_int(v) for v in value)
    except ValueError:
        raise ValueError("must be a non-empty list of positive integers, e.g. [64, 32]") from None


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def optional_text(value: Any) -> str | None:
    return None if value is None else text(value)


def resolve_schema(method: str, schema: Mapping[str, Setting], settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults filled in, every given value checked; UsageError (one line) for an unknown key or bad value."""
    if settings is not None and not isinstance(settings, Mapping):
        raise UsageError(f"{method}: settings must be a mapping of setting name to value, got {type(settings).__name__}")
    settings = dict(settings or {})
    for key in settings:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"{method}: unknown setting {key!r}; {hint}known settings: {', '.join(sorted(schema))}"
            )
    resolved: dict[str, Any] = {}
    for key, spec in schema.items():
        if key not in settings:
            resolved[key] = spec.default
            continue
        try:
            resolved[key] = spec.check(settings[key])
        except ValueError as exc:
            hint = f" ({spec.help})" if spec.help else ""
            raise UsageError(
                f"{method}: setting {key} {exc}, got {settings[key]!r}{hint}; default is {spec.default!r}"
            ) from None
    return resolved


def accuracy(predictions: Iterable[int], labels: Sequence[int]) -> float:
    predictions = list(predictions)
    if not labels:
        return float("nan")
    return sum(int(p == y) for p, y in zip(predictions, labels, strict=True)) / len(labels)

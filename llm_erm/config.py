"""The grid configuration: the one object that says what a run does.

`GridConfig` is the source of truth. The engine takes it (`run_grid(GridConfig(...))`), the erm-grid flow's
parameters are generated from its fields (Prefect renders them as a form, nested models as sub-forms), the
`llm-erm run` options are generated from them too (`cli_options()`), and the manifest records it. A field
added here appears everywhere; tests/test_config.py fails if any surface lacks one.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llm_erm.errors import UsageError
from llm_erm.proposers.config import ProposerConfig

SandboxMode = Literal["bwrap", "rlimit", "auto"]
ERM, ICL = "erm", "icl"  # the other method kinds are the trained learners: see llm_erm.engine.methods.KINDS
# The sandbox's own bound (llm_erm.verify.sandbox): refused here, by the option's name, before Prefect starts.
MAX_CANDIDATE_TIMEOUT_S = 60.0


def _classical() -> set[str]:
    """The learners that take a baseline `protocol` (the classical ones: llm_erm.methods.classical)."""
    from llm_erm.methods import LEARNERS

    return {name for name, learner in LEARNERS.items() if "protocol" in learner.schema}


def _kind(method: str):
    """The registered kind of a method id (llm_erm.engine.methods.KINDS: erm, icl, the trained learners)."""
    from llm_erm.engine.methods import KINDS

    return KINDS.get(method)


class MethodSpec(BaseModel):
    """One column of the comparison: a method, with its own settings, under a label unique in the grid.

    `erm` is propose-verify-select with the grid's proposer (or `proposer`'s overrides of it, e.g. another
    model); `icl` asks that model to label test inputs from in-context examples; the others are trained
    baselines (llm_erm.methods). Every method learns from the cell's train + val split (200 examples by
    default, as the paper's baselines do; erm shows the model only the train split and selects on val)
    and is scored on the cell's test split.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(description="erm | icl | sgd | finetune | xgboost | random-forest | decision-tree | "
                        "svm | logreg | mlp")
    label: str | None = Field(None, description="Its name in the grid (default: the method id, with -n<N> "
                              "for another sample size)")
    n_train: int | None = Field(None, ge=4, description="Trained baselines and icl: examples learned from "
                                "(default: train + val); a multiple of 4, split evenly into train and val")
    proposer: dict[str, Any] = Field(default_factory=dict, description="erm and icl: overrides of the "
                                     "grid's proposer settings, e.g. {\"model\": \"gpt-5-mini\"}")
    settings: dict[str, Any] = Field(default_factory=dict, description="The method's own settings")

    @model_validator(mode="before")
    @classmethod
    def _id_shorthand(cls, data: Any) -> Any:
        return {"method": data} if isinstance(data, str) else data

    @field_validator("method")
    @classmethod
    def _known(cls, value: str) -> str:
        if _kind(value) is None:
            from llm_erm.engine.methods import KINDS

            raise ValueError(f"unknown method {value!r}: use one of {', '.join(KINDS)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> MethodSpec:
        if self.n_train is not None and (self.n_train % 4 or self.method == ERM):
            raise ValueError(f"{self.method}: n_train must be a multiple of 4 (train = val = n/2, each exactly "
                             "balanced), and erm learns from the grid's train/val sizes" if self.method != ERM
                             else "erm: n_train does not apply (set --train-size/--val-size)")
        if self.label is not None and (not self.label or any(c in self.label for c in "/\\ ")):
            raise ValueError(f"method label {self.label!r} must be a non-empty name without slashes or spaces")
        if self.proposer and not self.calls_a_model:
            raise ValueError(f"{self.method} is a trained baseline: it has no proposer settings")
        return self

    @property
    def resolved_label(self) -> str:
        if self.label:
            return self.label
        return self.method if self.n_train is None else f"{self.method}-n{self.n_train}"

    @property
    def calls_a_model(self) -> bool:
        return _kind(self.method).calls_model

# Fields that do not change what is computed, and so not the default run id: where results go, how fast
# they are computed, how failures are retried and whether anything is spent.
_IDENTITY_EXCLUDE: dict[str, Any] = {
    "run_id": True, "results_dir": True, "storage_options": True, "datasets_dir": True, "concurrency": True, "budget_usd": True,
    "dry_run": True, "analyze": True, "fan_out": True, "method_deployments": True, "generalize_lengths": True, "verify_workers": True, "retries": True,
    "retry_delay_s": True, "max_retry_after_s": True, "call_limit": True, "sandbox": True, "table_files": True,
    # Written into each classical method's settings (GridConfig._protocol_into_methods), which are identity.
    "baseline_protocol": True,
    "preset": True,  # its values are in the fields it filled
    "proposer": {"call_timeout_s": True, "api_key_env": True, "batch": True, "batch_poll_s": True,
                 "service_tier": True},
}


class GridConfig(BaseModel):
    """A grid of targets x lengths x trials: what to learn, how candidates are drawn, verified and selected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- what to learn ----------------------------------------------------------------------------
    functions: list[str] | None = Field(None, description="Target ids (fn_a ...), names, module:callable or "
                                        "labelled files (default: the 12 paper targets fn_a..fn_l)")
    lengths: list[int] | None = Field(None, description="Input lengths (default: each target's own)")
    attempts: int = Field(5, ge=1, description="Candidates per trial (k)")
    trials: int = Field(1, ge=1, description="Independent trials per cell")
    train_size: int = Field(100, ge=2, description="Training examples shown in the prompt (even)")
    val_size: int = Field(100, ge=2, description="Validation examples that select the program (even)")
    test_size: int = Field(10000, ge=2, description="Test examples that score it (even)")
    seed: int = Field(42, description="Base seed; each dataset uses a seed derived from it")
    alphabet: str | None = Field(None, description="binary | decimal: the alphabet of a module:callable target")
    tabular_protocol: Literal["clean", "raw"] = Field("clean", description="Tabular targets: clean (anonymised "
                                                      "names, affine-transformed numbers) | raw")
    table_files: dict[str, str] = Field(default_factory=dict, description="Tabular targets: a local copy of a "
                                        "table, target id -> file (ID=PATH on the command line)")

    # -- what to compare --------------------------------------------------------------------------
    methods: list[MethodSpec] = Field(default_factory=lambda: [MethodSpec(method=ERM)],
                                      description="The methods to run on every cell (default: erm)")
    sample_sizes: list[int] | None = Field(None, description="Trained baselines: run each once per sample "
                                           "size (train + val examples), e.g. 200 1000 10000 100000")
    duplicates: bool = Field(False, description="Allow repeated inputs where a length's input space is too small "
                             "for distinct train + val (the paper's n=10): test is then not held out, as "
                             "meta.json says")
    preset: Literal["paper-table"] | None = Field(None, description="A named grid (llm_erm/presets.py): "
                                                  "paper-table = the paper's tasks at n=100, offline methods; "
                                                  "options given beside it win")
    baseline_protocol: Literal["fair", "paper"] = Field("fair", description="Classical baselines: fair (train + "
                                                        "val, one-hot, one model) | paper (the official runner's: "
                                                        "train split, its grids, cv=5, 10 seeds)")

    # -- how candidates are drawn -----------------------------------------------------------------
    proposer: ProposerConfig = Field(default_factory=ProposerConfig, description="Where candidates come from")
    prompt_variant: str | None = Field(None, description="explain | interview | preview (default: the paper's)")
    prompt_template: str | None = Field(None, description="A prompt template file of your own")

    # -- how they are verified and selected -------------------------------------------------------
    selection: str = Field("erm", description="erm (highest validation accuracy) | shortest (the smallest "
                           "program among the best)")
    sanitize: bool = Field(True, description="Strip comments and docstrings the program cannot observe")
    candidate_timeout_s: float = Field(0.01, gt=0, le=MAX_CANDIDATE_TIMEOUT_S, description="CPU seconds a "
                                       "candidate may spend per input, on average over each batch of inputs; "
                                       "machine load does not count")
    candidate_memory_mb: int = Field(1024, ge=128, description="Memory limit of one candidate, in MB")
    sandbox: SandboxMode = Field("bwrap", description="bwrap (required by default) | rlimit (weaker: "
                                 "resource limits only, opt in) | auto (bwrap where it works)")
    verify_workers: int | None = Field(None, ge=1, description="Sandbox processes (default: one per core)")

    # -- how the engine runs it -------------------------------------------------------------------
    concurrency: int = Field(4, ge=1, description="Trials, and so model calls, in flight in this process")
    wave_size: int = Field(1, ge=1, description="Attempts proposed in parallel per wave (1: sequential, so "
                           "early stopping saves the most)")
    retries: int = Field(6, ge=0, description="Retries of a call that failed transiently (429, 5xx, timeout)")
    retry_delay_s: float = Field(1.0, ge=0, description="First retry delay in seconds; doubles per retry")
    max_retry_after_s: float = Field(120.0, ge=0, description="Longest Retry-After a call waits for")
    call_limit: int | None = Field(None, ge=1, description="Model calls in flight across every worker of the "
                                   "run (a Prefect global concurrency limit; Prefect runs only)")
    budget_usd: float | None = Field(None, gt=0, description="Stop starting calls once the run's estimated "
                                     "spend reaches this")
    run_id: str | None = Field(None, description="Name of the run (default: a hash of the grid config)")
    results_dir: str = Field("results", description="Where runs are stored: a path, or an fsspec URL "
                             "(s3://bucket/prefix needs the s3 extra)")
    storage_options: dict[str, Any] | None = Field(None, description="fsspec options of an object-store "
                                                   "--results-dir (no credentials: those come from the environment)")
    datasets_dir: str = Field("datasets", description="Where datasets are stored")
    dry_run: bool = Field(False, description="Print every distinct prompt and the cost estimate; spend nothing")
    analyze: bool = Field(True, description="Analyse the run at the end (leakage checks, plots, report)")
    generalize_lengths: list[int] | None = Field(None, description="Also score the selected erm programs at "
                                                 "these lengths at the end (llm-erm generalize)")
    fan_out: bool = Field(False, description="Run each cell as a flow run of the erm-cell deployment "
                          "(Prefect runs only)")
    method_deployments: dict[str, str] | None = Field(
        None, description="Fanned-out grids: the erm-cell deployment (and so the work pool) each method label "
        "or method runs on, '*' for the rest, e.g. {\"sgd\": \"erm-cell-gpu\", \"*\": \"erm-cell\"}")

    @field_validator("alphabet")
    @classmethod
    def _alphabet(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A user target's alphabet; a built-in target has its own and would silently ignore it."""
        from llm_erm.datasets.custom import FILE_ALPHABETS
        from llm_erm.datasets.targets import is_user_target

        if value is None:
            return value
        if value not in FILE_ALPHABETS:
            raise ValueError(f"must be one of {', '.join(FILE_ALPHABETS)}")
        if not any(is_user_target(f) for f in info.data.get("functions") or ()):
            raise ValueError("applies only to user targets (module:callable or a labelled file): the built-in "
                             "targets have their own alphabet; drop --alphabet")
        return value

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str | None) -> str | None:
        from llm_erm.results.runs import run_id_problem

        problem = None if value is None else run_id_problem(value)  # `..`, `.`, paths: outside results_dir
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="before")
    @classmethod
    def _protocol_into_methods(cls, data: Any) -> Any:
        """A `preset` fills the fields it names (those given win); then `baseline_protocol: paper` sets
        `protocol: paper` on every classical method that does not set its own, so the protocol is in each
        method's settings: in the run's identity and in every ledger row."""
        if isinstance(data, dict) and data.get("preset"):
            from llm_erm.presets import PRESETS

            if data["preset"] in PRESETS:  # an unknown name is left to the field's own check
                data = {**PRESETS[data["preset"]](), **{k: v for k, v in data.items() if v is not None}}
        if not isinstance(data, dict) or data.get("baseline_protocol", "fair") == "fair" or "methods" not in data:
            return data
        methods = []
        for m in data["methods"]:
            spec = m.model_dump() if isinstance(m, MethodSpec) else ({"method": m} if isinstance(m, str) else dict(m))
            if spec.get("method") in _classical():
                spec["settings"] = {"protocol": data["baseline_protocol"], **(spec.get("settings") or {})}
            methods.append(spec)
        return {**data, "methods": methods}

    @model_validator(mode="after")
    def _check(self) -> GridConfig:
        from llm_erm.proposers.prompt import VARIANTS
        from llm_erm.results.selection import RULES

        if self.prompt_variant is not None and self.prompt_variant not in VARIANTS:
            raise ValueError(f"unknown prompt variant {self.prompt_variant!r}: use one of {', '.join(VARIANTS)}")
        if self.selection not in RULES:
            raise ValueError(f"unknown selection rule {self.selection!r}: use one of {', '.join(RULES)}")
        if not self.methods:
            raise ValueError("name at least one method")
        labels = [m.resolved_label for m in self.resolved_methods()]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(f"method label {repeated[0]!r} is used twice: give each setting its own label")
        for size in self.sample_sizes or ():
            if size < 4 or size % 4:
                raise ValueError(f"sample size {size} must be a multiple of 4 (train = val = n/2, each balanced)")
        return self

    def resolved_methods(self) -> list[MethodSpec]:
        """The methods with the sample sizes expanded: a baseline without its own n_train runs once per size."""
        if not self.sample_sizes:
            return list(self.methods)
        out = []
        for spec in self.methods:
            if spec.calls_a_model or spec.n_train is not None:
                out.append(spec)
            else:
                default = self.train_size + self.val_size
                out += [spec if n == default else spec.model_copy(update={"n_train": n}) for n in self.sample_sizes]
        return out

    def method_proposer(self, spec: MethodSpec) -> ProposerConfig:
        """The proposer settings of an erm or icl method: the grid's, with the method's overrides."""
        if not spec.proposer:
            return self.proposer.resolved()
        try:
            return ProposerConfig(**{**self.proposer.model_dump(exclude_unset=True), **spec.proposer}).resolved()
        except ValidationError as exc:
            raise UsageError(f"method {spec.resolved_label}: proposer {describe_error(exc)}") from None

    # -- building -----------------------------------------------------------------------------------
    @classmethod
    def from_options(cls, **options: Any) -> GridConfig:
        """Build from user input; a bad value becomes one UsageError line naming the option."""
        try:
            return cls(**options)
        except ValidationError as exc:
            raise UsageError(describe_error(exc)) from None

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> GridConfig:
        """A config file (JSON or TOML, a GridConfig's fields at the top level), with `overrides` on top."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read config file {path}: {type(exc).__name__}: check --config") from None
        try:
            if str(path).endswith(".toml"):
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"config file {path} is not valid {'TOML' if str(path).endswith('.toml') else 'JSON'}: "
                             f"{exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"config file {path} must hold an object of GridConfig fields")
        given = overrides.pop("proposer", {})
        proposer = {**(data.get("proposer") if isinstance(data.get("proposer"), dict) else {}), **given}
        try:
            return cls(**{**data, **overrides, **({"proposer": proposer} if proposer else {})})
        except ValidationError as exc:
            loc = [str(p) for p in exc.errors()[0].get("loc", ()) if not isinstance(p, int)]
            on_command_line = bool(loc) and (loc[0] in overrides or (loc[0] == "proposer" and loc[1:2]
                                                                     and loc[1] in given))
            if on_command_line:
                raise UsageError(describe_error(exc)) from None
            raise UsageError(f"config file {path}: {_describe_file_error(exc, cls)}") from None

    @classmethod
    def recorded(cls, run_dir: Path) -> GridConfig:
        """The config a run recorded in its manifest (what was set; every other field at its default), so a
        later command (generalize, verify --run-id) scores with the run's own settings."""
        from llm_erm.results.ledger import read_manifest

        manifest = read_manifest(run_dir)  # a Path, or a UPath on an object store
        try:
            return cls(**{**(manifest.get("config") or {}), "run_id": manifest.get("run_id") or run_dir.name})
        except ValidationError as exc:
            raise UsageError(f"the manifest of run {run_dir.name} holds a config this version cannot read "
                             f"({describe_error(exc)}): pass the settings as options") from None

    # -- derived ------------------------------------------------------------------------------------
    def resolved(self) -> GridConfig:
        """This config with the automatic choices made (the proposer kind), as a run records it."""
        return self.model_copy(update={"proposer": self.proposer.resolved()})

    def identity(self) -> dict:
        """What determines the answers and their scores, by content: the prompt template's text (not its
        path), the replay source's recorded answers, the table and labelled files' bytes; never a path,
        so `./t.txt` and `t.txt` are one run and an edited template is another."""
        data = self.resolved().model_dump(mode="json", exclude=_IDENTITY_EXCLUDE)
        if self.prompt_template:
            data["prompt_template"] = "sha256:" + _sha256(self.template_text() or "")
        data["proposer"] = _proposer_identity(data["proposer"])
        for method in data["methods"]:
            if method.get("proposer"):
                method["proposer"] = _proposer_identity(method["proposer"])
        if data.get("functions"):
            data["functions"] = [_file_identity(f) if _is_file_target(f) else f for f in data["functions"]]
        if self.table_files:
            data["table_files"] = {key: _file_identity(path) for key, path in sorted(self.table_files.items())}
        if not data.get("duplicates"):  # in the identity only when set: other run ids stay what they were
            data.pop("duplicates", None)
        return data

    def resolved_run_id(self) -> str:
        if self.run_id:
            return self.run_id
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"grid-{digest[:12]}"

    def run_dir(self) -> Path:
        """The run's folder: a Path, or a UPath on an object store (llm_erm.results.storage)."""
        from llm_erm.results.runs import run_folder

        return run_folder(self.results_dir, self.resolved_run_id(), options=self.storage_options)

    def template_record(self) -> dict[str, str] | None:
        """The prompt template as the manifest records it: where it was read, its digest and its text."""
        text = self.template_text()
        if text is None:
            return None
        return {"path": str(self.prompt_template), "sha256": _sha256(text), "text": text}

    def template_text(self) -> str | None:
        """The user's prompt template, read and checked (UsageError), or None for the paper's prompt."""
        from llm_erm.proposers.prompt import load_template

        return load_template(Path(self.prompt_template)) if self.prompt_template else None

    def dataset_specs(self):
        """Every cell's DatasetSpec, validated before any work (UsageError on the first bad one)."""
        from llm_erm.datasets import make_specs

        specs = make_specs(self.functions, self.lengths, train_size=self.train_size, val_size=self.val_size,
                           test_size=self.test_size, seed=self.seed, alphabet=self.alphabet,
                           protocol=self.tabular_protocol, table_files=self.table_files,
                           duplicates=self.duplicates)
        if not specs:
            raise UsageError("the grid is empty: name at least one function and length")
        return specs


def default(field: str) -> Any:
    """A GridConfig field's default: the one place every command reads its defaults from."""
    info = GridConfig.model_fields[field]
    return info.default_factory() if info.default_factory is not None else info.default


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_file_target(function: str) -> bool:
    from llm_erm.datasets.targets import FILE_SUFFIXES

    return function.lower().endswith(FILE_SUFFIXES)


def _file_identity(path: str) -> str:
    """A file by its bytes (its name is where it was read, not what it holds); a file that cannot be read
    keeps its path here, and the dataset step refuses it with its own message."""
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return str(path)


def _proposer_identity(proposer: dict[str, Any]) -> dict[str, Any]:
    """A proposer's settings with the replay source as the digest of its recorded answers."""
    if not proposer.get("replay_from"):
        return proposer
    from llm_erm.proposers.replay import source_digest

    return {**proposer, "replay_from": "sha256:" + source_digest(str(proposer["replay_from"]))}


def describe_error(exc: ValidationError) -> str:
    """The first validation error as one line naming the option, e.g. `--attempts: must be >= 1 (got 0)`."""
    error = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
    name = option_name(loc[-1], nested=len(loc) > 1) if loc else "config"
    message = error["msg"].removeprefix("Value error, ")
    given = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
    return f"{name}: {message}{given}"


def _describe_file_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """A config file's first bad field as the file spells it, with the closest field for a misspelt one."""
    import difflib

    error = exc.errors()[0]
    loc = [str(part) for part in error.get("loc", ()) if not isinstance(part, int)]
    name = ".".join(loc) or "config"
    if error.get("type") == "extra_forbidden":
        fields = list(ProposerConfig.model_fields if len(loc) > 1 and loc[0] == "proposer" else model.model_fields)
        close = difflib.get_close_matches(loc[-1], fields, n=1)
        return f"unknown field {name!r}" + (f": did you mean {close[0]!r}?" if close else ": see llm-erm run --help")
    given = f" (got {error['input']!r})" if "input" in error and not isinstance(error["input"], dict) else ""
    return f"{name}: {error['msg'].removeprefix('Value error, ')}{given}"


def option_name(field: str, nested: bool = False) -> str:
    """The command-line option of a field: `candidate_timeout_s` -> `--candidate-timeout`."""
    if nested and field in ("kind", "options"):
        return "--proposer" if field == "kind" else "--proposer-options"
    return "--" + field.removesuffix("_s").replace("_", "-")


def flow_signature() -> inspect.Signature:
    """GridConfig's top-level fields as keyword-only parameters (the erm-grid flow's signature)."""
    params = []
    for name, field in GridConfig.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=field.annotation))
    return inspect.Signature(params, return_annotation=dict)

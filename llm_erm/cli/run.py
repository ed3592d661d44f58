"""`llm-erm run`, `llm-erm status`, `llm-erm export`: the grid from the shell, and its ledger.

`run`'s options are generated from GridConfig (and its nested ProposerConfig): one option per field,
named after it (`candidate_timeout_s` -> `--candidate-timeout`, the proposer's `kind` -> `--proposer`),
with the field's description as help. Every option is read as text and validated by GridConfig, so a bad
value is one line naming the option, whatever its type.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
import threading
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from llm_erm.cli.options import MultiValueCommand
from llm_erm.config import GridConfig, option_name
from llm_erm.errors import UsageError
from llm_erm.proposers.config import ProposerConfig

RUN_HELP = """Run a grid: datasets -> prompts -> propose k -> verify -> select -> aggregate -> analysis.

Runs the erm-grid flow in this process on a Prefect API (PREFECT_API_URL, else a server already running on
127.0.0.1:4200, else a temporary one), or with --no-prefect the same engine without Prefect. Re-running the
same command resumes the run: finished trials are skipped and every answer already paid for is reused.
Exits 1 when any call or trial failed (re-run to retry exactly those), 2 on bad input (nothing written).
"""

RUN_EXAMPLES = """
Examples:


  llm-erm run --functions fn_a fn_c --lengths 20 30            # offline enumerator without OPENAI_API_KEY
  llm-erm run --proposer openai-responses --model gpt-5 --attempts 5 --budget-usd 20
  llm-erm run --proposer openai-chat --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen3-8B --temperature 0.7
  llm-erm run --functions fn_i --lengths 100 --dry-run         # every distinct prompt and the cost, spend nothing
  llm-erm run --config grid.toml --trials 3                   # a config file, with options on top
"""


@dataclass(frozen=True)
class GridOption:
    """One `llm-erm run` option and the config field it sets."""

    param: str  # the Python parameter name of the generated command
    option: str  # --candidate-timeout
    field: str  # candidate_timeout_s
    nested: bool  # a field of GridConfig.proposer
    annotation: Any
    default: Any
    help: str

    @property
    def metavar(self) -> str:
        base = _strip_none(self.annotation)
        if self.is_list:
            return "VALUE ..."
        if self.is_dict:
            return "KEY=VALUE"
        return {int: "INT", float: "NUMBER", Path: "PATH"}.get(base, "TEXT")

    @property
    def is_flag(self) -> bool:
        return self.annotation is bool

    @property
    def is_list(self) -> bool:
        return typing.get_origin(_strip_none(self.annotation)) is list

    @property
    def is_dict(self) -> bool:
        return typing.get_origin(_strip_none(self.annotation)) is dict


def _strip_none(annotation: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def grid_options() -> list[GridOption]:
    """Every GridConfig field (the proposer's flattened in), as a command-line option."""
    options = []
    for model, nested in ((GridConfig, False), (ProposerConfig, True)):
        for name, info in model.model_fields.items():
            if model is GridConfig and name == "proposer":
                continue
            default = info.default_factory() if info.default_factory is not None else info.default
            shown = "" if default in (None, {}) else f" [default: {str(default).lower() if isinstance(default, bool) else default}]"
            options.append(GridOption(f"proposer__{name}" if nested else name, option_name(name, nested), name,
                                      nested, info.annotation, default, (info.description or "") + shown))
    return options


def _parameters() -> list[inspect.Parameter]:
    params = [inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Path | None,
                                default=typer.Option(None, "--config", metavar="FILE", help="A GridConfig as JSON or "
                                                     "TOML; options on the command line override it."))]
    for opt in grid_options():
        if opt.is_flag:
            base = opt.option.removeprefix("--")
            decl, annotation = f"--{base}/--no-{base}", bool | None
        elif opt.is_list or opt.is_dict:
            decl, annotation = opt.option, list[str] | None
        else:
            decl, annotation = opt.option, str | None
        params.append(inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                        default=typer.Option(None, decl, help=opt.help, show_default=False,
                                                             metavar=None if opt.is_flag else opt.metavar)))
    params.append(inspect.Parameter("no_prefect", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                                    default=typer.Option(False, "--no-prefect", help="Run the engine in this "
                                                         "process without Prefect: no UI, no task runs.")))
    return params


def config_from_options(given: dict[str, Any]) -> GridConfig:
    """The GridConfig the options (and the --config file) describe; UsageError naming a bad option."""
    grid: dict[str, Any] = {}
    proposer: dict[str, Any] = {}
    for opt in grid_options():
        value = given.get(opt.param)
        if value is None or (opt.is_list and not value):
            continue
        if opt.is_dict:
            value = _parse_mapping(opt.option, value)
        elif opt.is_list:
            value = [v for item in value for v in item.split(",") if v]
        (proposer if opt.nested else grid)[opt.field] = value
    config_file = given.get("config_file")
    if config_file is not None:
        return GridConfig.from_file(config_file, **grid, proposer=proposer)
    return GridConfig.from_options(**grid, **({"proposer": proposer} if proposer else {}))


def _parse_mapping(option: str, values: list[str]) -> dict[str, Any]:
    """`--opt KEY=VALUE` (repeatable) or `--opt '{"key": ...}'` -> a dict."""
    mapping: dict[str, Any] = {}
    for value in values:
        if value.lstrip().startswith("{"):
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                raise UsageError(f"{option} takes KEY=VALUE or a JSON object, got {value!r}")
            mapping.update(parsed)
            continue
        key, sep, item = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} takes KEY=VALUE or a JSON object, e.g. {option} fn_o=./cdc.csv, got {value!r}")
        try:
            mapping[key.strip()] = json.loads(item)  # numbers, booleans, null and JSON values as such
        except ValueError:
            mapping[key.strip()] = item.strip()
    return mapping


def flow_parameters(config: GridConfig) -> dict[str, Any]:
    """The erm-grid flow's parameters for a config (its top-level fields, the proposer as a dict)."""
    return config.model_dump(mode="json")


def register(app: typer.Typer) -> None:
    run.__signature__ = inspect.Signature(_parameters())
    app.command(cls=MultiValueCommand, help=RUN_HELP, epilog=RUN_EXAMPLES)(run)
    app.command(help="Which cells of a run are done, running, missing, failed or skipped for budget. "
                     "Exits 1 when anything is failed or missing.", epilog=STATUS_EXAMPLES)(status)
    app.command(help="Write a run's attempt rows as JSONL or CSV (the original runner's columns first).",
                epilog=EXPORT_EXAMPLES)(export)


def check_before_work(config: GridConfig) -> None:
    """Everything that can refuse the run, before any dataset, call or file (and before Prefect starts)."""
    import shutil

    from llm_erm.config import ERM
    from llm_erm.engine import methods
    from llm_erm.engine.run import work_items
    from llm_erm.proposers import make_proposer

    work_items(config, config.dataset_specs())  # every cell and sample size is possible
    config.template_text()
    for method in config.resolved_methods():
        if method.method == ERM:
            make_proposer(config.method_proposer(method)).preflight()
        else:
            methods.prepare(config, method)
    uses_sandbox = any(m.method == ERM for m in config.methods)
    if uses_sandbox and config.sandbox == "bwrap" and not shutil.which("bwrap"):
        raise UsageError("bubblewrap (bwrap) is not installed, and candidates run only in its sandbox by default: "
                         "install it (apt-get install bubblewrap) or pass --sandbox rlimit to accept the weaker "
                         "resource-limit sandbox")


def run(**given: Any) -> None:
    no_prefect = given.pop("no_prefect", False)
    config = config_from_options(given)
    check_before_work(config)
    if config.proposer.kind is None and config.proposer.resolved_kind() == "enumerate":
        typer.echo("no OPENAI_API_KEY: proposing with the offline enumerative learner (--proposer enumerate)", err=True)
    if config.sandbox == "rlimit":
        typer.echo("warning: --sandbox rlimit: candidates run in resource-limited processes without bubblewrap's "
                   "isolation (recorded in every row)", err=True)
    if config.dry_run:  # the prompts go to stdout; no Prefect, no ledger, no call
        _print_plan(config)
        return

    from llm_erm.engine.run import work_items
    from llm_erm.results.progress import run_is_complete

    run_dir = config.run_dir()
    work = work_items(config, config.dataset_specs())
    if run_is_complete(run_dir, [w.key for w in work], with_report=config.analyze):
        # Nothing to propose, verify or aggregate: no need to start Prefect to learn that.
        typer.echo(f"run {run_dir.name} is complete: nothing to do (another --run-id starts a new run)", err=True)
        _print_summary(_read_summary(run_dir))
        _print_paths(run_dir)
        return
    code = _run_interruptibly(config, no_prefect, len(work))
    _print_paths(run_dir)
    if code:
        _exit_now(code)


def _run_interruptibly(config: GridConfig, no_prefect: bool, total_trials: int) -> int:
    """Run the grid; 0 when everything finished, 1 when something failed, 130/143 when interrupted.

    SIGINT and SIGTERM stop the run within seconds: no new call starts, the ledger keeps every finished
    trial and the journal every answer that arrived; calls still in flight are abandoned (the process exits
    without waiting for them)."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    run_dir = config.run_dir()
    try:
        with _progress(run_dir, total_trials):
            outcome = _run_with_prefect(config) if not no_prefect else _run_plain(config)
    except (KeyboardInterrupt, _Terminated) as exc:
        typer.echo(f"interrupted: run {run_dir.name} stopped; every finished trial and every answer that arrived "
                   "is kept. Re-run the same command to resume.", err=True)
        return 143 if isinstance(exc, _Terminated) else 130
    except BaseException as exc:  # Prefect's TerminationSignal is a BaseException of its own
        if type(exc).__name__ == "TerminationSignal":
            typer.echo(f"terminated: run {run_dir.name} stopped; re-run the same command to resume.", err=True)
            return 143
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(outcome["cells"])
    message = outcome.get("failure")
    if message:
        typer.echo(f"error: {message}", err=True)
        return 1
    return 0


class _Terminated(KeyboardInterrupt):
    pass


def _raise_interrupt(signum, frame) -> None:
    raise _Terminated()


def _run_plain(config: GridConfig) -> dict[str, Any]:
    from llm_erm.engine import run_grid

    result = run_grid(config)
    return {"cells": result.cells, "failure": result.failure_message()}


def _run_with_prefect(config: GridConfig) -> dict[str, Any]:
    from llm_erm import prefect_env

    with prefect_env.connect() as connection:
        typer.echo(f"prefect: {connection.how}", err=True)
        connection.wait()
        from llm_erm.flows.grid import erm_grid

        state = erm_grid(**flow_parameters(config), return_state=True)
        data = state.result(raise_on_failure=False)
        if not isinstance(data, dict):  # the flow itself crashed: its exception, as one line
            raise UsageError(f"the erm-grid flow ended {state.name}: {state.message}")
        return {"cells": data.get("cells", []), "failure": None if state.is_completed() else state.message}


def _exit_now(code: int) -> None:
    """Exit without waiting for threads blocked in model calls (their answers are not needed to resume)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _print_plan(config: GridConfig) -> None:
    from llm_erm.plan import plan_grid

    plan = plan_grid(config)
    for item in plan.prompts:
        typer.echo(f"===== {item.label}: {item.calls} call(s), ~{item.tokens:,} tokens each =====\n{item.prompt}")
    typer.echo(plan.estimate_text())


def _print_paths(run_dir: Path) -> None:
    typer.echo(f"results: {run_dir}")
    report = run_dir / "report" / "report.html"
    if report.exists():
        typer.echo(f"report:  {report}")


def _read_summary(run_dir: Path) -> list[dict]:
    from llm_erm.results import ledger

    return ledger.read_table(run_dir / ledger.SUMMARY_FILE).to_pylist()


class _progress:
    """A progress bar fed by the ledger itself: trial files appearing under the run directory."""

    def __init__(self, run_dir: Path, total: int):
        self.run_dir, self.total = run_dir, total
        self._stop = threading.Event()

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from llm_erm.results.ledger import finished_trials

        self._bar = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             transient=True)
        task = self._bar.add_task("trials", total=self.total)

        def poll() -> None:
            while not self._stop.wait(0.5):
                self._bar.update(task, completed=len(finished_trials(self.run_dir)))

        self._bar.start()
        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._bar.stop()


def _print_summary(cells: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from llm_erm.analysis.report import limit_flag

    several = len({c.get("method_label", "erm") for c in cells}) > 1
    table = Table(title="erm-grid: selected result per cell")
    columns = (["method"] if several else []) + ["target", "L", "trials", "test acc", "val acc", "attempts", "cost $"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("method", "target") else "right")
    for c in cells:
        scored = c.get("trials_scored", c.get("trials")) or 0
        table.add_row(
            *([str(c.get("method_label"))] if several else []), str(c["target"]), str(c["length"]), str(scored),
            _pm(c.get("test_mean"), c.get("test_std"), scored) + limit_flag(c.get("selected_limit_on_test")),
            _pm(c.get("val_mean"), c.get("val_std"), scored), str(c.get("attempts")), _num(c.get("cost_usd"), 4),
        )
    Console(width=max(Console().width, 120)).print(table)


def _num(value, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{float(value):.{digits}f}"


def _pm(mean, std, trials: int) -> str:
    if mean is None or mean != mean:
        return "—"
    return f"{_num(mean)} ± {_num(std)}" if trials > 1 else _num(mean)


def _run_dir(results_dir: str, run_id: str) -> Path:
    from llm_erm.results.storage import resolve

    location = resolve(results_dir)
    run_dir = location / run_id
    if not (run_dir / "manifest.json").exists():
        raise UsageError(f"no run {run_id!r} under {location}: check --run-id and --results-dir")
    return run_dir


STATUS_EXAMPLES = """
Examples:


  llm-erm status --run-id grid-3f9c2a1b0d4e
  llm-erm status --run-id nightly-2026-12-01 --results-dir /shared/results
"""


def status(
    run_id: str = typer.Option(..., help="The run to inspect."),
    results_dir: str = typer.Option("results", help="Where runs are stored."),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from llm_erm.results.progress import cell_statuses

    cells = cell_statuses(_run_dir(results_dir, run_id))
    table = Table(title=f"run {run_id}")
    for column in ("target", "L", "state", "trials done", "failed calls"):
        table.add_column(column)
    for c in cells:
        table.add_row(c.target, str(c.length), c.state, f"{c.trials_done}/{c.trials}", str(c.failed_attempts))
    Console().print(table)
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.state] = counts.get(c.state, 0) + 1
    typer.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    if any(c.state not in ("done", "running") for c in cells):
        raise typer.Exit(1)


EXPORT_EXAMPLES = """
Examples:


  llm-erm export --run-id grid-3f9c2a1b0d4e --format csv --output attempts.csv
  llm-erm export --run-id grid-3f9c2a1b0d4e --format jsonl --output attempts.jsonl
"""


def export(
    run_id: str = typer.Option(..., help="The run to export."),
    format: str = typer.Option("jsonl", "--format", help="jsonl | csv"),
    output: Path = typer.Option(..., help="File to write (its directory must exist)."),
    results_dir: str = typer.Option("results", help="Where runs are stored."),
) -> None:
    from llm_erm.results.export import write_export

    if format not in ("jsonl", "csv"):
        raise UsageError(f"--format must be jsonl or csv, got {format!r}")
    if not output.parent.resolve().is_dir():
        raise UsageError(f"--output {output}: the directory {output.parent} does not exist: create it first")
    run_dir = _run_dir(results_dir, run_id)
    n = write_export(run_dir, format, output)
    typer.echo(f"wrote {n} rows to {output}")

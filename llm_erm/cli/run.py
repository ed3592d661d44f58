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
import sys
import threading
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from llm_erm.cli.options import MultiValueCommand
from llm_erm.config import GridConfig, default, option_name
from llm_erm.errors import UsageError
from llm_erm.proposers.config import ProposerConfig

RUN_HELP = """Run a grid: datasets -> prompts -> propose k -> verify -> select -> aggregate -> analysis.

Runs the erm-grid flow in this process on the Prefect API you configured (PREFECT_API_URL or the active
profile's), else on a temporary server of this run's alone; or with --no-prefect the same engine without
Prefect. The first line says which. Re-running the
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
            shown = "" if default in (None, {}) or "default:" in (info.description or "") else (
                f" [default: {_shown_default(default)}]")
            options.append(GridOption(f"proposer__{name}" if nested else name, option_name(name, nested), name,
                                      nested, info.annotation, default, (info.description or "") + shown))
    return options


def _shown_default(default: Any) -> str:
    """A default as the user types it: `true`, `20 30 50`, a method by its name (not a Python repr)."""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list | tuple):
        return " ".join(_shown_default(v) for v in default)
    return str(getattr(default, "resolved_label", None) or default)


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


def run(**given: Any) -> None:
    from llm_erm.cli.stopping import Stopper

    # Ctrl-C from here on ends in one line and exit 130, before the run starts as well as during it
    stopper = Stopper(lambda: typer.echo("interrupted: before the run started; nothing was written", err=True))
    stopper.install()
    try:
        _run(stopper, **given)
    except KeyboardInterrupt:
        stopper.finish()


def _run(stopper, **given: Any) -> None:
    no_prefect = given.pop("no_prefect", False)
    config = config_from_options(given)
    from llm_erm.plan import plan_run

    plan = plan_run(config)  # every refusal, before any dataset, call or file (and before Prefect starts)
    if not config.dry_run:
        from llm_erm.results.runs import check_writable

        config.run_dir()  # a run folder that would lie outside --results-dir is refused before anything
        check_writable(config.results_dir, "--results-dir")
        check_writable(config.datasets_dir, "--datasets-dir")
        _check_access(config)  # a refused key is found in seconds, before a server, datasets or a call
        # the first line says where the run's flow runs go
        typer.echo("prefect: not used (--no-prefect)" if no_prefect else _prefect_line(), err=True)
    if config.proposer.kind is None and config.proposer.resolved_kind() == "enumerate":
        typer.echo("no OPENAI_API_KEY: proposing with the offline enumerative learner (--proposer enumerate)", err=True)
    if config.sandbox == "rlimit":
        typer.echo("warning: --sandbox rlimit: candidates run in resource-limited processes without bubblewrap's "
                   "isolation (recorded in every row)", err=True)
    if config.dry_run:  # the prompts go to stdout; no Prefect, no ledger, no call
        _print_plan(plan)
        return

    from llm_erm.results.progress import run_is_complete

    run_dir, work = plan.run_dir, plan.work
    if run_is_complete(run_dir, [w.key for w in work], with_report=config.analyze):
        # Nothing to propose, verify or aggregate: no need to start Prefect to learn that.
        typer.echo(f"run {run_dir.name} is complete: nothing to do (another --run-id starts a new run)", err=True)
        _print_summary(_read_summary(run_dir))
        _print_paths(run_dir)
        return

    def interrupted() -> None:
        typer.echo(f"interrupted: run {run_dir.name} stopped; every finished trial and every answer that arrived "
                   "is kept. Re-run the same command to resume.", err=True)
        _print_paths(run_dir)

    stopper.message = interrupted
    try:
        code = _run_interruptibly(config, no_prefect, work, stopper)
    except OSError as exc:
        from llm_erm.engine.run import disk_failure

        if not disk_failure(exc):
            raise
        _disk_failed(run_dir, exc)
    _print_paths(run_dir)
    if code:
        _exit_now(code)


def _check_access(config: GridConfig) -> None:
    """Each distinct model proposer's key (and, on the provider's API, model): llm_erm.proposers.access."""
    from llm_erm.config import ERM
    from llm_erm.proposers import make_proposer
    from llm_erm.proposers.access import check_access

    seen: set[str] = set()
    for method in config.resolved_methods():
        if method.method != ERM:
            continue
        proposer = make_proposer(config.method_proposer(method))
        identity = json.dumps(proposer.identity(), sort_keys=True, default=str)
        if identity not in seen:
            seen.add(identity)
            check_access(proposer)


def _disk_failed(run_dir: Path, exc: OSError) -> None:
    """A write failed mid-run (disk full, quota, read-only): one line naming it and what is kept; exit 1."""
    from llm_erm.results.ledger import finished_trials

    where = exc.filename or run_dir
    kept = len(finished_trials(run_dir))
    typer.echo(f"error: writing {where} failed: {exc.strerror or exc}. Kept: {kept} finished trial(s) in "
               f"{run_dir} and every answer already in its journal (no half-written file). Free space and re-run "
               "the same command to resume.", err=True)
    _exit_now(1)


def _prefect_line() -> str:
    from llm_erm import prefect_env

    return prefect_env.planned()


def _run_interruptibly(config: GridConfig, no_prefect: bool, work: list, stopper) -> int:
    """Run the grid; 0 when everything finished, 1 when something failed; interrupted, it exits 130/143.

    SIGINT and SIGTERM stop the run within seconds (llm_erm.cli.stopping): no new call starts, the ledger
    keeps every finished trial and the journal every answer that arrived; calls still in flight are
    abandoned (the process exits without waiting for them)."""
    run_dir = config.run_dir()
    try:
        from llm_erm.config import ERM
        from llm_erm.results.progress import pending

        todo = pending(run_dir, [w.key for w in work])
        answers_total = sum(config.attempts for w in work if w.method.method == ERM)
        with _progress(run_dir, todo, answers_total):
            outcome = _run_with_prefect(config, stopper) if not no_prefect else _run_plain(config)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (stopping.Terminated)
        stopper.finish()
    except BaseException as exc:  # Prefect's TerminationSignal is a BaseException of its own
        if type(exc).__name__ == "TerminationSignal":
            stopper.finish(143)
        raise
    finally:
        stopper.uninstall()
    _print_summary(outcome["cells"])
    message = outcome.get("failure")
    if message:
        typer.echo(f"error: {message}", err=True)
        return 1
    return 0


def _run_plain(config: GridConfig) -> dict[str, Any]:
    from llm_erm.engine import run_grid

    result = run_grid(config)
    return {"cells": result.cells, "failure": result.failure_message()}


def _run_with_prefect(config: GridConfig, stopper) -> dict[str, Any]:
    from llm_erm import prefect_env

    with prefect_env.connect() as connection:
        stopper.cleanups.append(connection.kill)  # a stop that cannot wait still takes our server with it
        from llm_erm.flows.grid import erm_grid  # Prefect's import (a second or more) while our server boots

        connection.wait()

        state = erm_grid(**flow_parameters(config), return_state=True)
        data = state.result(raise_on_failure=False)
        if isinstance(data, OSError):  # a disk that cannot be written: said as such by run()
            raise data
        if not isinstance(data, dict):  # the flow itself crashed: its exception, as one line
            raise UsageError(f"the erm-grid flow ended {state.name}: {state.message}")
        return {"cells": data.get("cells", []), "failure": None if state.is_completed() else state.message}


def _exit_now(code: int) -> None:
    """Exit without waiting for threads blocked in model calls (their answers are not needed to resume)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _print_plan(plan) -> None:
    from llm_erm.plan import describe, dry_run

    grid = dry_run(plan)
    several = len(plan.methods) > 1
    for item in grid.prompts:
        typer.echo(f"{describe(item, several)}\n{item.prompt}")
    typer.echo(grid.estimate_text())


def _print_paths(run_dir: Path) -> None:
    typer.echo(f"results: {run_dir}")
    report = run_dir / "report" / "report.html"
    if report.exists():
        typer.echo(f"report:  {report}")


def _read_summary(run_dir: Path) -> list[dict]:
    from llm_erm.results import ledger

    return ledger.read_table(run_dir / ledger.SUMMARY_FILE).to_pylist()


class _progress:
    """Where the run stands, from the ledger (trials) and the journal (answers, spend): a bar in a terminal;
    without one (nohup, CI, a notebook's subprocess) a log line when trials finish and every LOG_EVERY_S
    otherwise. A resume says what it reuses."""

    LOG_EVERY_S = 10.0

    def __init__(self, run_dir: Path, pending: list[tuple[str, str, int, int]], answers_total: int):
        self.run_dir, self.pending, self.answers_total = run_dir, pending, answers_total
        self._stop = threading.Event()

    def __enter__(self):
        from llm_erm.results.progress import RunProgress

        self._progress = RunProgress(self.run_dir, self.pending, self.answers_total)
        resume = self._progress.resume_line()
        if resume:
            typer.echo(resume, err=True)
        self._tty = sys.stderr.isatty()
        self._thread = threading.Thread(target=self._bar if self._tty else self._log, daemon=True,
                                        name="llm-erm-progress")
        if self._tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._rich = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[answers]}"), TimeElapsedColumn(), transient=True)
            self._task = self._rich.add_task("trials", total=self._progress.trials_total, answers="")
            self._rich.start()
        self._thread.start()
        return self

    def _bar(self) -> None:
        while not self._stop.wait(0.5):
            snap = self._progress.poll()
            eta = f", ETA ~{_short(snap.eta_s)}" if snap.eta_s is not None else ""
            self._rich.update(self._task, completed=snap.trials_done,
                              answers=f"answers {snap.answers}/{snap.answers_total}, ${snap.spend_usd:.4f}{eta}")

    def _log(self) -> None:
        last_at, last_trials = 0.0, self._progress.trials_before
        while not self._stop.wait(1.0):
            snap = self._progress.poll()
            if snap.trials_done != last_trials or snap.elapsed_s - last_at >= self.LOG_EVERY_S:
                typer.echo(snap.line(), err=True)
                last_at, last_trials = snap.elapsed_s, snap.trials_done

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._tty:
            self._rich.stop()
        elif exc[0] is None:
            typer.echo(self._progress.poll().line(), err=True)  # where the run ended


def _short(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _print_summary(cells: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    from llm_erm.analysis.report import limit_flag

    several = len({c.get("method_label", "erm") for c in cells}) > 1
    why = {id(c): _no_score_reason(c) for c in cells}
    table = Table(title="erm-grid: selected result per cell")
    columns = ((["method"] if several else []) + ["target", "L", "trials", "test acc", "val acc", "attempts", "cost $"]
               + (["no score because"] if any(why.values()) else []))
    for column in columns:
        table.add_column(column, justify="left" if column in ("method", "target", "no score because") else "right")
    for c in cells:
        scored = c.get("trials_scored", c.get("trials")) or 0
        table.add_row(
            *([str(c.get("method_label"))] if several else []), str(c["target"]), str(c["length"]), str(scored),
            _pm(c.get("test_mean"), c.get("test_std"), scored) + limit_flag(c.get("selected_limit_on_test")),
            _pm(c.get("val_mean"), c.get("val_std"), scored), str(c.get("attempts")), _num(c.get("cost_usd"), 4),
            *([why[id(c)] or ""] if any(why.values()) else []),
        )
    Console(width=max(Console().width, 120)).print(table)


def _no_score_reason(cell: dict) -> str | None:
    """Why a cell has no test score, from its attempts' statuses: `3 of 3 attempts: syntax_error`."""
    from llm_erm.results.schema import STATUSES

    mean = cell.get("test_mean")
    if mean is not None and mean == mean:
        return None
    counts = {s: int(cell.get(f"n_{s}") or 0) for s in STATUSES}
    total = sum(counts.values())
    if not total:
        return "no attempt finished"
    parts = [f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n and s != "ok"]
    if not parts:
        return f"{total} attempts, none selected"
    if len(parts) == 1 and not counts["ok"]:
        return f"{total} of {total} attempts: {parts[0].split(' ', 1)[1]}"
    return f"{total} attempts: " + ", ".join(parts)


def _num(value, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{float(value):.{digits}f}"


def _pm(mean, std, trials: int) -> str:
    if mean is None or mean != mean:
        return "—"
    return f"{_num(mean)} ± {_num(std)}" if trials > 1 else _num(mean)


def _run_dir(results_dir: str, run_id: str) -> Path:
    from llm_erm.results.runs import run_folder

    run_dir = run_folder(results_dir, run_id)
    if not (run_dir / "manifest.json").exists():
        raise UsageError(f"no run {run_id!r} under {results_dir}: check --run-id and --results-dir")
    return run_dir


STATUS_EXAMPLES = """
Examples:


  llm-erm status --run-id grid-3f9c2a1b0d4e
  llm-erm status --run-id nightly-2026-12-01 --results-dir /shared/results
"""


def status(
    run_id: str = typer.Option(..., help="The run to inspect."),
    results_dir: str = typer.Option(default("results_dir"), help="Where runs are stored."),
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
    results_dir: str = typer.Option(default("results_dir"), help="Where runs are stored."),
) -> None:
    from llm_erm.results.export import write_export

    if format not in ("jsonl", "csv"):
        raise UsageError(f"--format must be jsonl or csv, got {format!r}")
    if not output.parent.resolve().is_dir():
        raise UsageError(f"--output {output}: the directory {output.parent} does not exist: create it first")
    run_dir = _run_dir(results_dir, run_id)
    n = write_export(run_dir, format, output)
    typer.echo(f"wrote {n} rows to {output}")

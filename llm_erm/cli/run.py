"""`llm-erm run`, `llm-erm status`, `llm-erm export`: the grid flow and its ledger from the shell."""

from __future__ import annotations

import threading
from pathlib import Path

import typer

from llm_erm.cli.options import MultiValueCommand
from llm_erm.errors import UsageError

RUN_EXAMPLES = """
Examples:

  llm-erm run --functions fn_a fn_c --lengths 20 30            # offline enumerator without OPENAI_API_KEY

  llm-erm run --proposer openai-responses --model gpt-5 --attempts 5 --budget-usd 20

  llm-erm run --proposer openai-chat --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen3-8B

  llm-erm run --functions fn_i --lengths 20 --dry-run          # print the prompts, spend nothing
"""


def register(app: typer.Typer) -> None:
    app.command(cls=MultiValueCommand, help="Run the erm-grid flow locally (Prefect's embedded API).",
                epilog=RUN_EXAMPLES)(run)
    app.command(help="Which cells of a run are done, running, missing, failed or skipped for budget.")(status)
    app.command(help="Write a run's attempt rows as JSONL or CSV (original column set first).")(export)


def run(
    functions: list[str] | None = typer.Option(None, "--functions", "--function", "-f",
                                                  help="Target ids (default: fn_a..fn_l) or module:callable."),
    lengths: list[int] | None = typer.Option(None, "--lengths", "--length", "-L",
                                                help="Lengths (default: each target's own)."),
    attempts: int = typer.Option(5, help="Candidates per trial (k)."),
    trials: int = typer.Option(1, help="Independent trials per cell."),
    train_size: int = typer.Option(100), val_size: int = typer.Option(100), test_size: int = typer.Option(10000),
    seed: int = typer.Option(42),
    alphabet: str | None = typer.Option(None, help="binary | decimal: the alphabet of a module:callable target."),
    proposer: str | None = typer.Option(None, help="openai-responses | openai-chat | enumerate | replay "
                                                       "(default: openai-responses with OPENAI_API_KEY, else enumerate)."),
    model: str = typer.Option("gpt-5"),
    base_url: str | None = typer.Option(None, help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
    reasoning_effort: str | None = typer.Option("high"),
    verbosity: str | None = typer.Option("low"),
    max_output_tokens: int = typer.Option(20000),
    tool_choice: str = typer.Option("auto"),
    code_interpreter: bool = typer.Option(False, "--code-interpreter"),
    timeout_s: float = typer.Option(1200.0, "--timeout", help="Seconds per model call."),
    replay_from: str | None = typer.Option(None, help="Ledger dir or JSONL to replay (with --proposer replay)."),
    prompt_variant: str | None = typer.Option(None, help="explain | interview | preview"),
    prompt_template: str | None = typer.Option(None, help="A template file of your own."),
    wave_size: int = typer.Option(1, help="Attempts proposed in parallel per wave (1: sequential, early stop saves most)."),
    concurrency: int = typer.Option(4, help="Trials (and so model calls) in flight."),
    budget_usd: float | None = typer.Option(None, help="Stop starting calls once the estimated spend reaches this."),
    run_id: str | None = typer.Option(None, help="Name of the run (default: a hash of the grid config)."),
    results_dir: str = typer.Option("results"),
    datasets_dir: str = typer.Option("datasets"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every prompt that would be sent; spend nothing."),
    analyze: bool = typer.Option(True, "--analyze/--no-analyze", help="Run the analysis flow at the end."),
) -> None:
    from llm_erm.config import GridConfig

    params = {k: v for k, v in locals().items() if k != "GridConfig"}
    params["functions"] = functions or None
    params["lengths"] = lengths or None
    try:
        config = GridConfig(**params)
    except ValueError as exc:
        raise UsageError(_first_error(exc)) from None
    specs = config.dataset_specs()  # refuse a bad grid before Prefect starts
    config.template_text()
    from llm_erm.proposers import make_proposer

    make_proposer(config.proposer_config()).preflight()
    if config.proposer is None and config.resolved_proposer() == "enumerate":
        typer.echo("no OPENAI_API_KEY: proposing with the offline enumerative learner (--proposer enumerate)", err=True)

    from llm_erm.results.progress import run_is_complete

    if config.dry_run:  # the prompts go to stdout; no Prefect, no ledger, no call
        from llm_erm.plan import planned_prompts

        for label, prompt in planned_prompts(config):
            typer.echo(f"===== {label} =====\n{prompt}")
        return
    run_dir = config.run_dir()
    if run_is_complete(run_dir, specs, config.trials, with_report=config.analyze):
        # Nothing to propose, verify or aggregate: no need to start Prefect to learn that.
        typer.echo(f"run {run_dir.name} is complete: nothing to do (another --run-id starts a new run)", err=True)
        _print_summary(_read_summary(run_dir))
    else:
        from llm_erm import prefect_env

        prefect_env.configure()
        from llm_erm.flows.grid import erm_grid

        with _progress(run_dir, len(specs) * config.trials):
            _print_summary(erm_grid(**params)["cells"])
    typer.echo(f"results: {run_dir}")
    report = run_dir / "report" / "report.html"
    if report.exists():
        typer.echo(f"report:  {report}")


def _read_summary(run_dir: Path) -> list[dict]:
    import pyarrow.parquet as pq

    from llm_erm.results import ledger

    return pq.read_table(run_dir / ledger.SUMMARY_FILE).to_pylist()


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        err = errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "config"
        return f"--{where.replace('_', '-')}: {err['msg']}"
    return str(exc)


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

    table = Table(title="erm-grid: selected programs per cell")
    for column in ("target", "L", "trials", "test acc", "val acc", "attempts", "cost $"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for c in cells:
        table.add_row(
            str(c["target"]), str(c["length"]), str(c.get("trials_scored", c.get("trials"))),
            _pm(c.get("test_mean"), c.get("test_std")), _pm(c.get("val_mean"), c.get("val_std")),
            str(c.get("attempts")), _num(c.get("cost_usd"), 4),
        )
    Console().print(table)


def _num(value, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{float(value):.{digits}f}"


def _pm(mean, std) -> str:
    return f"{_num(mean)} ± {_num(std)}" if mean is not None and mean == mean else "—"


def _run_dir(results_dir: str, run_id: str) -> Path:
    run_dir = Path(results_dir).resolve() / run_id
    if not (run_dir / "manifest.json").exists():
        raise UsageError(f"no run {run_id!r} under {Path(results_dir).resolve()}: check --run-id and --results-dir")
    return run_dir


def status(
    run_id: str = typer.Option(..., help="The run to inspect."),
    results_dir: str = typer.Option("results"),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from llm_erm.results.progress import cell_statuses

    cells = cell_statuses(_run_dir(results_dir, run_id))
    table = Table(title=f"run {run_id}")
    for column in ("target", "L", "state", "trials done"):
        table.add_column(column)
    for c in cells:
        table.add_row(c.target, str(c.length), c.state, f"{c.trials_done}/{c.trials}")
    Console().print(table)
    counts: dict[str, int] = {}
    for c in cells:
        counts[c.state] = counts.get(c.state, 0) + 1
    typer.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


def export(
    run_id: str = typer.Option(..., help="The run to export."),
    format: str = typer.Option("jsonl", "--format", help="jsonl | csv"),
    output: Path = typer.Option(..., help="File to write."),
    results_dir: str = typer.Option("results"),
) -> None:
    from llm_erm.results.export import write_export

    if format not in ("jsonl", "csv"):
        raise UsageError(f"--format must be jsonl or csv, got {format!r}")
    run_dir = _run_dir(results_dir, run_id)
    n = write_export(run_dir, format, output)
    typer.echo(f"wrote {n} rows to {output}")

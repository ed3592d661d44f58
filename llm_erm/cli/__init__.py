"""The `llm-erm` command.

Each subcommand lives in its own module with a `register(app)` function; modules import their
heavy dependencies (Prefect, openai, pyarrow) inside the command body so `--help` stays fast.
"""

import sys

import typer

from llm_erm.errors import UsageError

app = typer.Typer(
    name="llm-erm",
    help="Propose-and-verify program learning with language models (LLM-ERM).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from llm_erm.cli import analyze, datasets, replay, run, verify  # noqa: E402

for module in (datasets, verify, run, analyze, replay):
    module.register(app)


def main() -> None:
    try:
        app(prog_name="llm-erm")
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)

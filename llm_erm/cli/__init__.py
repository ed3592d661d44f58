"""The `llm-erm` command.

Each subcommand lives in its own module with a `register(app)` function; modules import their heavy
dependencies (Prefect, openai, pyarrow) inside the command body so `--help` stays fast. Every refusal is one
line on stderr, `error: <problem>: <fix>`, with exit code 2 and nothing written: our own UsageError and the
command-line parser's errors alike.
"""

import sys

import typer

from llm_erm import __version__
from llm_erm.errors import UsageError

EXAMPLES = """
Examples:


  llm-erm run --functions fn_a fn_c --lengths 20 30
  llm-erm status --run-id grid-3f9c2a1b0d4e
  llm-erm analyze --run-id grid-3f9c2a1b0d4e
"""

app = typer.Typer(
    name="llm-erm",
    help="Propose-and-verify program learning with language models (LLM-ERM).",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llm-erm {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                        help="Print the version and exit.")) -> None:
    pass


from llm_erm.cli import analyze, datasets, local_model, replay, run, verify, view  # noqa: E402

for module in (datasets, verify, run, analyze, replay, view, local_model):
    module.register(app)


# click's UsageError (bad option, missing value ...), wherever this typer takes click from (0.29 vendors it)
ParserError = typer.BadParameter.__mro__[1]


def main() -> None:
    try:
        code = app(prog_name="llm-erm", standalone_mode=False)
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ParserError as exc:  # the parser's refusals, as one line too
        command = exc.ctx.command_path if exc.ctx is not None else "llm-erm"
        typer.echo(f"error: {exc.format_message()}: see '{command} --help'", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

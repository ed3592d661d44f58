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

# Options that take several values the way the paper's runner did: `--functions fn_a fn_c --lengths 20 30`.
MULTI_VALUE_OPTIONS = frozenset({"--functions", "--lengths"})


def expand_multi_value(argv: list[str]) -> list[str]:
    """`--lengths 20 30` -> `--lengths 20 --lengths 30` (click repeats options; it has no nargs=* for them).

    Commas also separate values: `--functions fn_a,fn_c`.
    """
    out: list[str] = []
    option, bare = None, False
    for arg in argv:
        if arg in MULTI_VALUE_OPTIONS:
            if bare:
                out.append(option)
            option, bare = arg, True
        elif option and not arg.startswith("-"):
            out += [x for value in arg.split(",") if value for x in (option, value)]
            bare = False
        else:
            if bare:
                out.append(option)  # no value: let click say so
            option, bare = None, False
            out.append(arg)
    if bare:
        out.append(option)
    return out


def main(argv: list[str] | None = None) -> None:
    args = expand_multi_value(sys.argv[1:] if argv is None else argv)
    try:
        app(args=args, prog_name="llm-erm")
    except UsageError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)

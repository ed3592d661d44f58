"""`llm-erm datasets build|show`: generate the (target x length) datasets and inspect the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_erm.cli.options import MultiValueCommand

FUNCTIONS_HELP = (
    "Targets: ids (fn_a ... fn_l, fn_v, fn_aa), names (parity_all ...) or user targets "
    "'module.path:callable'. Several values: --functions fn_a fn_c (or repeat the flag, or commas). "
    "Default: the 12 seed targets fn_a..fn_l."
)
LENGTHS_HELP = "Input lengths, e.g. --lengths 20 50. Default: each target's own default lengths."
ALPHABET_HELP = "Alphabet of user targets: binary or decimal."
DIR_HELP = "Where the stores live: <dir>/<target name>/L<L>/seed<derived seed>/."

EXAMPLES_BUILD = """
Examples:

  llm-erm datasets build

  llm-erm datasets build --functions fn_a fn_c --lengths 20 30

  llm-erm datasets build --function mymodule:my_target --alphabet binary --lengths 24
"""


def _specs(functions, lengths, train_size, val_size, test_size, seed, alphabet):
    from llm_erm.datasets.batch import make_specs, split_values

    length_values = [_parse_length(v) for v in split_values(lengths)] or None
    return make_specs(functions, length_values, train_size=train_size, val_size=val_size,
                      test_size=test_size, seed=seed, alphabet=alphabet)


def _parse_length(value: str) -> int:
    from llm_erm.errors import UsageError

    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--lengths takes integers, got {value!r}") from None


Functions = Annotated[list[str] | None, typer.Option("--functions", "--function", "-f", help=FUNCTIONS_HELP)]
Lengths = Annotated[list[str] | None, typer.Option("--lengths", "--length", "-L", help=LENGTHS_HELP)]
TrainSize = Annotated[int, typer.Option(help="Training examples (even: splits are exactly balanced).")]
ValSize = Annotated[int, typer.Option(help="Validation examples (even).")]
TestSize = Annotated[int, typer.Option(help="Test examples (even).")]
Seed = Annotated[int, typer.Option(help="Base seed; each dataset uses a seed derived from it.")]
DatasetsDir = Annotated[Path, typer.Option(help=DIR_HELP)]
Alphabet = Annotated[str | None, typer.Option(help=ALPHABET_HELP)]
Workers = Annotated[int, typer.Option(help="Parallel build processes (0: one per CPU, at most 8).")]


def register(app: typer.Typer) -> None:
    datasets_app = typer.Typer(help="Build and inspect the datasets (targets x lengths).", no_args_is_help=True)
    app.add_typer(datasets_app, name="datasets")

    @datasets_app.command("build", cls=MultiValueCommand, epilog=EXAMPLES_BUILD)
    def build(
        functions: Functions = None,
        lengths: Lengths = None,
        train_size: TrainSize = 100,
        val_size: ValSize = 100,
        test_size: TestSize = 10000,
        seed: Seed = 42,
        datasets_dir: DatasetsDir = Path("datasets"),
        alphabet: Alphabet = None,
        workers: Workers = 0,
    ) -> None:
        """Generate the datasets (or reuse intact ones): leak-free, balanced, hash-verified."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from llm_erm.datasets.batch import build_all, default_workers

        specs = _specs(functions, lengths, train_size, val_size, test_size, seed, alphabet)
        console = Console(stderr=True)
        counts = {"built": 0, "reused": 0}
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("datasets", total=len(specs))

            def on_done(spec, dataset, reused):
                counts["reused" if reused else "built"] += 1
                progress.update(task, advance=1, description=f"{spec.target_obj.id} L{spec.length}")

            build_all(specs, datasets_dir, workers or default_workers(), on_done)
        typer.echo(
            f"{len(specs)} datasets ready in {datasets_dir} "
            f"({counts['built']} built, {counts['reused']} reused)"
        )

    @datasets_app.command("show", cls=MultiValueCommand)
    def show(
        functions: Functions = None,
        lengths: Lengths = None,
        train_size: TrainSize = 100,
        val_size: ValSize = 100,
        test_size: TestSize = 10000,
        seed: Seed = 42,
        datasets_dir: DatasetsDir = Path("datasets"),
        alphabet: Alphabet = None,
    ) -> None:
        """Show the selected datasets: sizes, balance, distinct inputs, path and status."""
        from rich.console import Console
        from rich.table import Table

        from llm_erm.datasets.store import SPLITS, dataset_status, open_dataset

        specs = _specs(functions, lengths, train_size, val_size, test_size, seed, alphabet)
        table = Table(title=f"datasets in {datasets_dir}")
        for column in ("target", "name", "L", "train/val/test", "positives", "distinct inputs", "status", "path"):
            table.add_column(column, no_wrap=column != "path")
        style = {"built": "green", "missing": "yellow", "corrupt": "red"}
        for spec in specs:
            status = dataset_status(spec, datasets_dir)
            dataset = open_dataset(spec, datasets_dir) if status == "built" else None
            meta = dataset.meta if dataset else {}
            target = spec.target_obj
            table.add_row(
                target.id,
                target.name,
                str(spec.length),
                "/".join(str(spec.sizes[s]) for s in SPLITS),
                "/".join(str(meta["positives"][s]) for s in SPLITS) if meta else "-",
                "/".join(str(meta["distinct_inputs"][s]) for s in SPLITS) if meta else "-",
                f"[{style[status]}]{status}[/]",
                str(spec.store_path(datasets_dir)),
            )
        Console(width=200).print(table)

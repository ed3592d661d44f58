"""`llm-erm verify`: score one program file on one cell's dataset and print the verdict as JSON."""

from pathlib import Path
from typing import Annotated

import typer

ProgramFile = Annotated[
    Path, typer.Argument(help="Plain Python defining f(x), or a raw model answer (JSON, fences, prose around it).")
]
Function = Annotated[
    str, typer.Option("--function", "-f", help="Target id (fn_a ...) or a user target module.path:callable.")
]
Length = Annotated[int, typer.Option("--length", "-L", help="Input length L of the cell.")]
Alphabet = Annotated[str | None, typer.Option("--alphabet", help="Alphabet of a user target (binary, decimal ...).")]
TrainSize = Annotated[int, typer.Option("--train-size")]
ValSize = Annotated[int, typer.Option("--val-size")]
TestSize = Annotated[int, typer.Option("--test-size")]
Seed = Annotated[int, typer.Option("--seed", help="Base seed of the dataset.")]
DatasetsDir = Annotated[Path, typer.Option("--datasets-dir", help="Where datasets are stored (and built when missing).")]
Timeout = Annotated[float, typer.Option("--timeout", help="Wall-clock limit of the candidate, in seconds.")]
MemoryMb = Annotated[int, typer.Option("--memory-mb", help="Memory limit of the candidate, in MB.")]
AsJson = Annotated[bool, typer.Option("--json", help="One compact JSON line instead of indented JSON.")]


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify)


def verify(
    program_file: ProgramFile,
    function: Function,
    length: Length,
    train_size: TrainSize = 100,
    val_size: ValSize = 100,
    test_size: TestSize = 10000,
    seed: Seed = 42,
    alphabet: Alphabet = None,
    datasets_dir: DatasetsDir = Path("datasets"),
    timeout_s: Timeout = 10.0,
    memory_mb: MemoryMb = 1024,
    as_json: AsJson = False,
) -> None:
    """Score one program on a cell's dataset in the sandbox and print the verdict as JSON.

    The dataset is the one `llm-erm datasets build` makes for the same target, length, sizes and seed;
    it is built when missing. The JSON holds status, train_acc, val_acc, test_acc, sandbox and the
    other verification columns of the results ledger.

    Examples:

        llm-erm verify tests/programs/fn_a.py --function fn_a --length 20

        llm-erm verify answer.txt --function fn_i --length 50 --test-size 2000 --json
    """
    import json

    from llm_erm.datasets import DatasetSpec, build_dataset, open_dataset
    from llm_erm.errors import UsageError
    from llm_erm.verify import Sandbox, verify_candidate

    # Everything is checked before the dataset store is touched.
    try:
        text = program_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot read the program file {program_file}: {reason}; pass a readable UTF-8 text file") from None
    spec = DatasetSpec(function, length, train_size, val_size, test_size, seed, alphabet)
    spec.validate()
    with Sandbox(workers=1, timeout_s=timeout_s, memory_mb=memory_mb) as sandbox:
        dataset = open_dataset(spec, datasets_dir)
        if dataset is None:
            typer.echo(f"building the dataset of {spec.describe()} in {datasets_dir} ...", err=True)
            dataset = build_dataset(spec, datasets_dir)
        result = verify_candidate(text, dataset, sandbox)
    verdict = {
        "target": dataset.target.id,
        "length": length,
        "dataset_id": dataset.dataset_id,
        "dataset_path": str(dataset.path),
        **result.to_row(),
    }
    typer.echo(json.dumps(verdict) if as_json else json.dumps(verdict, indent=2))

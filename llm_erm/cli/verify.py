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
CandidateTimeout = Annotated[float, typer.Option(
    "--candidate-timeout",
    help="CPU seconds the program may use per input (measured by the sandbox, so a busy machine does not "
         "cause timeouts); the same option as on `llm-erm run`.")]
SandboxMode = Annotated[str, typer.Option(
    "--sandbox", help="bwrap (bubblewrap, the default: refuses to run without it), rlimit (weaker, opt-in) "
                      "or auto (bwrap where it works, else rlimit).")]
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
    candidate_timeout: CandidateTimeout = 0.01,
    memory_mb: MemoryMb = 1024,
    sandbox_mode: SandboxMode = "bwrap",
    as_json: AsJson = False,
) -> None:
    """Score one program on a cell's dataset in the sandbox and print the verdict as JSON.

    The dataset is the one `llm-erm datasets build` makes for the same target, length, sizes and seed;
    it is built when missing. The JSON holds status, train_acc, val_acc, test_acc, sandbox and the
    other verification columns of the results ledger. Exits 1 when the program did not run cleanly
    (any status but ok), after printing the JSON.

    Examples:

        llm-erm verify tests/programs/fn_a.py --function fn_a --length 20

        llm-erm verify answer.txt --function fn_i --length 50 --test-size 2000 --json

        llm-erm verify prime.py --function fn_i --length 100 --candidate-timeout 0.05 --sandbox auto
    """
    import json

    from llm_erm.datasets import DatasetSpec, build_dataset, open_dataset
    from llm_erm.errors import UsageError
    from llm_erm.verify import Sandbox, verify_candidate
    from llm_erm.verify.sandbox import MODE_CHOICES

    # Everything is checked before the dataset store is touched.
    try:
        text = program_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise UsageError(f"cannot read the program file {program_file}: {reason}; pass a readable UTF-8 text file") from None
    spec = DatasetSpec(function, length, train_size, val_size, test_size, seed, alphabet)
    spec.validate()
    if not 0 < candidate_timeout <= 60:
        raise UsageError(f"--candidate-timeout is CPU seconds per input: give a number above 0 and at most 60, "
                         f"got {candidate_timeout:g}")
    if sandbox_mode not in MODE_CHOICES:
        raise UsageError(f"unknown --sandbox {sandbox_mode!r}: use one of {', '.join(MODE_CHOICES)}")
    with Sandbox(workers=1, time_per_input_s=candidate_timeout, memory_mb=memory_mb, mode=sandbox_mode) as sandbox:
        if sandbox.mode == "rlimit":
            typer.echo(f"warning: candidates run in the weaker rlimit sandbox ({sandbox.fallback_reason}); "
                       "install bubblewrap for the full isolation", err=True)
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
    if result.status != "ok":
        raise typer.Exit(1)

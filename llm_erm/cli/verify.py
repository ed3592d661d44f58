"""`llm-erm verify`: score one program file on one cell's dataset and print the verdict as JSON."""

from pathlib import Path
from typing import Annotated

import typer

from llm_erm.config import default

ProgramFile = Annotated[
    Path, typer.Argument(help="Plain Python defining f(x), or a raw model answer (JSON, fences, prose around it).")
]
Function = Annotated[
    str, typer.Option("--function", "-f", help="Target id (fn_a ...) or a user target module.path:callable.")
]
Length = Annotated[int, typer.Option("--length", "-L", help="Input length L of the cell.")]
Alphabet = Annotated[str | None, typer.Option("--alphabet", help="Alphabet of a user target (binary, decimal ...).")]
TrainSize = Annotated[int | None, typer.Option("--train-size", help="Default: the run's (--run-id), else 100.")]
ValSize = Annotated[int | None, typer.Option("--val-size", help="Default: the run's (--run-id), else 100.")]
TestSize = Annotated[int | None, typer.Option("--test-size", help="Default: the run's (--run-id), else 10000.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Base seed of the dataset.")]
DatasetsDir = Annotated[Path | None, typer.Option("--datasets-dir", help="Where datasets are stored (and built when missing).")]
CandidateTimeout = Annotated[float | None, typer.Option(
    "--candidate-timeout",
    help="CPU seconds the program may use per input (measured by the sandbox, so a busy machine does not "
         "cause timeouts); the same option as on `llm-erm run`.")]
SandboxMode = Annotated[str | None, typer.Option(
    "--sandbox", help="bwrap (bubblewrap, the default: refuses to run without it), rlimit (weaker, opt-in) "
                      "or auto (bwrap where it works, else rlimit).")]
MemoryMb = Annotated[int | None, typer.Option("--candidate-memory-mb", help="Memory limit of the candidate, in MB; "
                                               "the same option as on `llm-erm run`.")]
RunId = Annotated[str | None, typer.Option("--run-id", help="Take every setting not given here (sizes, seed, "
                                           "timeout, memory, sandbox, datasets dir) from this run's manifest.")]
ResultsDir = Annotated[Path, typer.Option("--results-dir", help="Where runs are stored (with --run-id).")]
AsJson = Annotated[bool, typer.Option("--json", help="One compact JSON line instead of indented JSON.")]


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify)


def verify(
    program_file: ProgramFile,
    function: Function,
    length: Length,
    train_size: TrainSize = None,
    val_size: ValSize = None,
    test_size: TestSize = None,
    seed: Seed = None,
    alphabet: Alphabet = None,
    datasets_dir: DatasetsDir = None,
    candidate_timeout: CandidateTimeout = None,
    memory_mb: MemoryMb = None,
    sandbox_mode: SandboxMode = None,
    run_id: RunId = None,
    results_dir: ResultsDir = Path(default("results_dir")),
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
    run = _settings(run_id, results_dir)  # every setting not given: the run's, else GridConfig's default
    train_size = run.train_size if train_size is None else train_size
    val_size = run.val_size if val_size is None else val_size
    test_size = run.test_size if test_size is None else test_size
    seed = run.seed if seed is None else seed
    alphabet = run.alphabet if alphabet is None else alphabet
    datasets_dir = Path(run.datasets_dir) if datasets_dir is None else datasets_dir
    candidate_timeout = run.candidate_timeout_s if candidate_timeout is None else candidate_timeout
    memory_mb = run.candidate_memory_mb if memory_mb is None else memory_mb
    sandbox_mode = run.sandbox if sandbox_mode is None else sandbox_mode
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


def _settings(run_id: str | None, results_dir: Path):
    """The run's recorded config (UsageError naming --run-id when there is none), or the defaults."""
    from llm_erm.config import GridConfig
    from llm_erm.errors import UsageError

    if run_id is None:
        return GridConfig()
    from llm_erm.results.runs import run_folder

    run_dir = run_folder(results_dir, run_id)  # a plain name, inside --results-dir (or its bucket)
    if not (run_dir / "manifest.json").exists():
        raise UsageError(f"no run {run_id!r} under {results_dir}: check --run-id and --results-dir")
    return GridConfig.recorded(run_dir)

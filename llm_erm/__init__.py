"""LLM-ERM: propose-and-verify program learning.

    from llm_erm import GridConfig, run_grid
    result = run_grid(GridConfig(functions=["fn_a", "fn_c"], lengths=[20], proposer="enumerate"))

Vocabulary carried through the package:
  target   a hidden boolean function (fn_a ...), see llm_erm.datasets
  dataset  the train/val/test splits of one (target, length, sizes, seed), content-hashed on disk
  cell     one (target, length) of the grid
  prompt   what a proposer is shown: the training split only
  proposer draws candidate programs (OpenAI, OpenAI-compatible, enumerative, replay, plug-ins)
  journal  every model answer, on disk the moment it arrives (llm_erm.results.journal)
  verify   extracts, sandboxes and scores one candidate
  trial    one k-attempt search on a cell's dataset; the selection rule keeps one attempt
  engine   runs trials and grids (llm_erm.engine); Prefect is a thin layer over it (tasks/, flows/)
"""

__version__ = "0.2.0"

__all__ = ["GridConfig", "GridResult", "TrialResult", "run_grid", "run_trial"]


def __getattr__(name: str):
    # Lazy, so `import llm_erm` (and `llm-erm --help`) does not pull in numpy, pyarrow and the rest.
    if name == "GridConfig":
        from llm_erm.config import GridConfig

        return GridConfig
    if name in ("GridResult", "TrialResult", "run_grid", "run_trial"):
        from llm_erm import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'llm_erm' has no attribute {name!r}")

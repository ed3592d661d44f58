"""The experiment engine, in plain Python: run a grid or one trial in-process, resumably.

    from llm_erm import GridConfig, run_grid
    result = run_grid(GridConfig(functions=["fn_a"], lengths=[20], proposer="enumerate"))
    result.cells      # the per-cell summary rows
    result.ok         # False when any call or trial failed (re-run to retry exactly those)

Nothing here imports Prefect; llm_erm/tasks and llm_erm/flows give the engine Prefect's orchestration.
"""

from llm_erm.engine.calls import attempt_seed
from llm_erm.engine.hooks import STEPS, Callback, Event, Hooks
from llm_erm.engine.results import GridResult, TrialResult
from llm_erm.engine.retry import Interrupted, RetryPolicy
from llm_erm.engine.run import Cell, GridRun, aggregate, run_grid, run_trial

__all__ = [
    "STEPS",
    "Callback",
    "Cell",
    "Event",
    "GridResult",
    "GridRun",
    "Hooks",
    "Interrupted",
    "RetryPolicy",
    "TrialResult",
    "aggregate",
    "attempt_seed",
    "run_grid",
    "run_trial",
]

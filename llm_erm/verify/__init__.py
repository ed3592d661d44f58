"""Verify candidate programs: extraction, sanitising, sandboxed execution, scoring.

    from llm_erm.verify import Sandbox, verify_candidate
    with Sandbox(workers=4, time_per_input_s=0.01, mode="bwrap") as sandbox:  # "rlimit" | "auto"
        manifest["sandbox_bounds"] = sandbox.bounds   # which bounds were in force (JSON-able)
        result = verify_candidate(model_text, dataset, sandbox)
        row = result.to_row()   # columns of the attempts ledger (limit_split among them)

Costs are the candidate's: an answer over MAX_ANSWER_CHARS (256 000) is `too_large` before anything parses it;
extraction and sanitising are linear in the answer; the program is compiled inside the candidate's process
under its CPU clock and memory limit; time it spends asleep, blocked or stopped is bounded by its own
allowance (wall time less the machine's queueing <= 2 x CPU allowance + 2 s). What candidates still share
through the host (read-only files and their page-cache residency, kernel facts, unreclaimed kernel memory)
and why none of it carries label information is written down in sandbox.py's docstring.

Sandbox(mode="bwrap") raises UsageError (one line: install bubblewrap, or opt in to --sandbox rlimit)
where bubblewrap cannot run. Plain Python: nothing here imports Prefect.
"""

from llm_erm.verify.extract import extract_code
from llm_erm.verify.sandbox import MODE_CHOICES, Execution, Outcome, Sandbox, SandboxError
from llm_erm.verify.sanitize import sanitize_code
from llm_erm.verify.score import CandidateResult, verify_candidate, verify_splits

__all__ = [
    "CandidateResult",
    "Execution",
    "MODE_CHOICES",
    "Outcome",
    "Sandbox",
    "SandboxError",
    "extract_code",
    "sanitize_code",
    "verify_candidate",
    "verify_splits",
]

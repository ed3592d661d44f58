"""Verify candidate programs: extraction, sanitising, sandboxed execution, scoring.

    from llm_erm.verify import Sandbox, verify_candidate
    with Sandbox(workers=4, time_per_input_s=0.01, mode="bwrap") as sandbox:  # "rlimit" | "auto"
        manifest["sandbox_bounds"] = sandbox.bounds   # which bounds were in force (JSON-able)
        result = verify_candidate(model_text, dataset, sandbox)
        row = result.to_row()   # columns of the attempts ledger (limit_split among them)

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

"""Verify candidate programs: extraction, sanitising, sandboxed execution, scoring (SPEC section 7).

    from llm_erm.verify import Sandbox, verify_candidate
    with Sandbox(workers=4, time_per_input_s=0.01) as sandbox:   # mode="bwrap" by default
        result = verify_candidate(model_text, dataset, sandbox)
        row = result.to_row()   # columns of the attempts ledger

Plain Python: nothing here imports Prefect.
"""

from llm_erm.verify.extract import extract_code
from llm_erm.verify.sandbox import Execution, Outcome, Sandbox, SandboxError
from llm_erm.verify.sanitize import sanitize_code
from llm_erm.verify.score import CandidateResult, verify_candidate, verify_splits

__all__ = [
    "CandidateResult",
    "Execution",
    "Outcome",
    "Sandbox",
    "SandboxError",
    "extract_code",
    "sanitize_code",
    "verify_candidate",
    "verify_splits",
]

"""The Prefect flows: erm-grid, erm-cell, erm-analysis, erm-nightly."""


def artifact_key(what: str, run_id: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    safe = "".join(c if c.isalnum() else "-" for c in run_id.lower()).strip("-")
    return f"{what}-{safe}"[:100]

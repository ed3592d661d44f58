"""Prefect defaults for this project, applied before Prefect is imported.

Telemetry off (no network but the package indexes here), a project-local PREFECT_HOME so runs
land in ./.prefect and the UI started from the checkout shows them, and a start-up timeout that
survives two busy cores. Values already in the environment win.
"""

import os
from pathlib import Path

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure(home: Path | None = None) -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str((home or Path.cwd() / ".prefect").resolve()))

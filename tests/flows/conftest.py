"""Flow tests run on a real Prefect API: the test harness (a temporary server with its own SQLite DB)."""

import pytest


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(autouse=True)
def _api(prefect_api, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-flows")
    return prefect_api

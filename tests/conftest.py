"""Shared fixtures: an isolated Prefect home, and a Prefect test server when asked for."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before Prefect is imported anywhere: an isolated home, no telemetry (there is no
# internet here), and enough time for the ephemeral server to start on 2 cores.
_home = Path(tempfile.mkdtemp(prefix="prefect-home-"))
os.environ["PREFECT_HOME"] = str(_home)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ["PREFECT_LOGGING_TO_API_BATCH_INTERVAL"] = "0.3"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("AGENTAPI_BASE", None)
os.environ.pop("AGENTAPI_TOKEN", None)

REPO = Path(__file__).resolve().parent.parent
# Copies of the real-world failure inputs, with their expected results in INDEX.md.
CASES = Path(__file__).resolve().parent / "cases"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A throwaway Prefect server and database for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def cases_dir() -> Path:
    """The real-world failure inputs under tests/cases/."""
    return CASES

"""Shared fixtures: isolated Prefect home, a Prefect test server, an HTTP receiver."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

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

# CI explores the same examples on every run, so a result does not depend on luck;
# local runs keep drawing new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

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


class HttpReceiver:
    """A local HTTP endpoint that records every request, like a webhook receiver.

    `statuses` scripts the answers (then 200). Requests that carry an
    `Idempotency-Key` already seen are recorded but not applied again, as a real
    receiver that honours the header would do.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.applied: dict[str, Any] = {}
        self.statuses: list[int] = []
        self.retry_after: str | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self) -> list[Any]:
        return [request["json"] for request in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": raw.decode("utf-8", "replace"),
                            "json": parsed,
                            "status": status,
                        }
                    )
                    key = (
                        self.headers.get("Idempotency-Key")
                        or f"#{len(receiver.requests)}"
                    )
                    if status < 300 and key not in receiver.applied:
                        receiver.applied[key] = parsed
                self.send_response(status)
                if status in (429, 503) and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A recording HTTP receiver on 127.0.0.1, stopped after the test."""
    receiver = HttpReceiver()
    yield receiver
    receiver.close()

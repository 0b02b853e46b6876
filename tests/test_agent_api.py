"""The post step: the idempotency key, the retry loop over HTTP, and the task."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from flows import agent_api
from flows.agent_api import (
    idempotency_key_for,
    post_assist,
    post_assist_task,
)
from flows.agent_config import AgentApiConfig
from flows.agent_server import serve_in_background
from flows.assist import AssistAnswer, AssistRequest, Doctrine, TenantContext
from flows.build import build_assist_request
from flows.errors import (
    AgentApiRejectedError,
    AgentApiTransientError,
)
from flows.records import CallRecord, CallStatistics, FilterResult, ScrapeResult
from flows.window import window_ending_at

TOKEN = "tok-Q8w2Zr5Xk1Lm9Pv3Ny7Ta4Hs6Jd0Fb"
SLOT_END = datetime(2026, 3, 10, 13, tzinfo=UTC)


class FakeClock:
    """Records the waits instead of sleeping; time moves on by what was waited."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self._offset = 0.0

    def now(self) -> float:
        return time.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 3))
        self._offset += seconds


def sample_request(
    *, lines: list[str] | None = None, end: datetime = SLOT_END
) -> AssistRequest:
    """A realistic request for one slot of dealershipai/orchestrator."""
    lines = lines or [
        "2026-03-10T12:00:01Z INFO httpx HTTP Request: POST "
        'https://api.openai.com/v1/chat/completions "HTTP/1.1 429 Too Many Requests"',
        "2026-03-10T12:00:03Z INFO httpx HTTP Request: POST "
        'https://api.openai.com/v1/chat/completions "HTTP/1.1 200 OK"',
    ]
    selected = [
        CallRecord(
            line=line,
            pod="orchestrator-7d9f8b6c5-x2x4z",
            container="orchestrator",
            method="POST",
            scheme="https",
            host="api.openai.com",
            path="/v1/chat/completions",
            status=429 if "429" in line else 200,
        )
        for line in lines
    ]
    errors = sum(1 for call in selected if call.status and call.status >= 400)
    scan = FilterResult(
        rule="literal",
        include=["POST https", "completions"],
        lines_read=1200,
        lines_in_window=1100,
        matches=len(selected),
        selected=selected,
        statistics=CallStatistics(
            total=len(selected),
            by_status={"429": errors, "200": len(selected) - errors},
            errors=errors,
            error_rate=errors / len(selected),
        ),
    )
    scrape = ScrapeResult(
        source="cluster", files=[], namespace="dealershipai", deployment="orchestrator"
    )
    return build_assist_request(
        scrape=scrape,
        scan=scan,
        window=window_ending_at(end, 24),
        tenant=TenantContext(),
        doctrine=Doctrine(),
    )


def fixed_analyse(request: AssistRequest) -> AssistAnswer:
    """A stand-in analyser whose answer names the session it answered."""
    return AssistAnswer(summary=f"analysed {request.session_id}", error_count=1)


def config_for(url: str, **overrides: float | int) -> AgentApiConfig:
    values: dict[str, float | int] = {
        "max_attempts": 4,
        "read_timeout_s": 2.0,
        "connect_timeout_s": 1.0,
    }
    values.update(overrides)
    return AgentApiConfig(
        base_url=url,
        token=SecretStr(TOKEN),
        token_source="the AGENTAPI_TOKEN environment variable",
        **values,  # type: ignore[arg-type]
    )


# --- the key -----------------------------------------------------------------


def test_idempotency_key_is_stable_per_slot() -> None:
    first = sample_request()
    rerun = sample_request(lines=["2026-03-10T12:30:00Z another line"])
    other_slot = sample_request(end=datetime(2026, 3, 17, 13, tzinfo=UTC))

    assert first.session_id == rerun.session_id
    assert idempotency_key_for(first.session_id) == idempotency_key_for(
        rerun.session_id
    )
    assert idempotency_key_for(first.session_id) != idempotency_key_for(
        other_slot.session_id
    )
    assert idempotency_key_for(first.session_id).startswith("assist-")


# --- posting over HTTP ---------------------------------------------------------


def test_post_sends_the_contract_headers_and_body() -> None:
    request = sample_request()
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        answer = post_assist(
            request, config_for(server.url), idempotency_key="assist-k1"
        )

    assert answer.summary == f"analysed {request.session_id}"
    (received,) = server.received
    assert received.token_matched
    assert received.headers["idempotency-key"] == "assist-k1"
    assert received.headers["content-type"] == "application/json"
    assert received.json() == request.model_dump(mode="json")


def test_post_logs_one_line_per_attempt_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        server.script([{"status": 503}, {"status": 200}])
        post_assist(
            sample_request(),
            config_for(server.url),
            idempotency_key="k",
            clock=clock,
            jitter=lambda: 0.0,
        )

    posts = [r.getMessage() for r in caplog.records if "-> HTTP" in r.getMessage()]
    assert [post.split(" in ")[0] for post in posts] == [
        f"POST {server.url}/v1/assist -> HTTP 503",
        f"POST {server.url}/v1/assist -> HTTP 200",
    ]
    assert "retrying in 0.50 s" in caplog.text
    assert clock.waits == [0.5]
    assert TOKEN not in caplog.text


def test_the_token_is_never_sent_elsewhere_on_a_redirect() -> None:
    with serve_in_background(token=TOKEN) as server:
        server.script(
            [{"status": 307, "headers": {"location": "https://elsewhere.example/x"}}]
        )
        with pytest.raises(AgentApiRejectedError, match="redirects are not followed"):
            post_assist(sample_request(), config_for(server.url), idempotency_key="k")
    assert len(server.received) == 1


# --- the Prefect task ----------------------------------------------------------


@pytest.mark.slow
def test_the_task_does_not_add_prefect_retries(
    prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop inside the task is the only retry: 3 attempts, not 3 x Prefect's."""
    from prefect import flow

    clock = FakeClock()
    monkeypatch.setattr(agent_api, "DEFAULT_CLOCK", clock)
    request = sample_request()

    @flow
    async def post_only(base: str) -> AssistAnswer:
        return await post_assist_task(request, config_for(base, max_attempts=3))

    with serve_in_background(token=TOKEN, repeat_last=True) as server:
        server.script([{"status": 503, "body": "<html>down</html>"}], repeat_last=True)
        with pytest.raises(AgentApiTransientError) as caught:
            asyncio.run(post_only(server.url))

    assert len(server.received) == 3
    assert caught.value.status == 503
    assert len(clock.waits) == 2
    keys = {r.headers["idempotency-key"] for r in server.received}
    assert keys == {idempotency_key_for(request.session_id)}


@pytest.mark.slow
def test_the_task_says_how_to_resend_a_saved_request(
    prefect_server: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect import flow

    from flows.request_store import save_request

    monkeypatch.setattr(agent_api, "DEFAULT_CLOCK", FakeClock())
    request = sample_request(end=datetime(2026, 2, 3, 13, tzinfo=UTC))
    save_request(request, request.session_id)

    @flow
    async def post_only(base: str) -> AssistAnswer:
        return await post_assist_task(request, config_for(base, max_attempts=1))

    with serve_in_background(token=TOKEN) as server:
        server.script([{"status": 502}])
        with pytest.raises(AgentApiTransientError):
            asyncio.run(post_only(server.url))

    assert f"completions-agent resend --slot {request.session_id}" in caplog.text


@pytest.mark.slow
def test_the_task_returns_the_answer_from_a_sync_flow_too(
    prefect_server: None,
) -> None:
    from prefect import flow

    request = sample_request()

    @flow
    def post_from_sync_flow(base: str) -> AssistAnswer:
        return asyncio.run(post_assist_task(request, config_for(base)))

    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        answer = post_from_sync_flow(server.url)

    assert answer.summary == f"analysed {request.session_id}"
    assert len(server.received) == 1


def test_connection_refused_is_retried_then_reported() -> None:
    clock = FakeClock()
    with serve_in_background(token=TOKEN) as server:
        url = server.url
    # The server is stopped: nothing listens on its port any more.
    with pytest.raises(AgentApiTransientError, match="failed to connect") as caught:
        post_assist(
            sample_request(),
            config_for(url, max_attempts=3),
            idempotency_key="k",
            clock=clock,
            jitter=lambda: 1.0,
        )
    assert clock.waits == [1.0, 2.0]
    # One sentence after the other: the connection error ends with its full stop.
    assert re.fullmatch(
        rf"POST {url}/v1/assist failed to connect \(ConnectError: \[Errno 111\] "
        r"Connection refused\); check the base URL and that the Agent API is up\. "
        r"Gave up after 3 attempt\(s\) in \d+\.\d s; the request can be resent "
        r"later with the same Idempotency-Key\.",
        str(caught.value),
    ), str(caught.value)
    assert caught.value.status is None


def test_a_message_is_ended_before_the_next_sentence_is_added() -> None:
    for message in ("HTTP 503: busy", "HTTP 503: busy.", "HTTP 503: busy. "):
        error = AgentApiTransientError(message)
        assert agent_api._then(error, "Gave up.") == "HTTP 503: busy. Gave up."

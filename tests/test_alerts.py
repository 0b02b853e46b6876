"""Failure hooks: one message per failed, timed-out or crashed run, slot and link."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.blocks.system import Secret
from prefect.client.schemas.objects import FlowRun, State
from prefect.settings import PREFECT_UI_URL, temporary_settings

from flows.alerts import (
    failure_message,
    load_notification_block,
    notify_run_ended_badly,
    scrub_secrets,
    slot_of,
)
from flows.errors import AgentApiRejectedError, ConfigurationError

TOKEN = "tok-alerts-7f3a9c1e5b"


def _save_webhook_block(name: str, url: str) -> None:
    CustomWebhookNotificationBlock(
        name=name,
        url=url,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save(name, overwrite=True)


@flow(on_failure=[notify_run_ended_badly], on_crashed=[notify_run_ended_badly])
def failing_flow(
    notification_block: str | None = None,
    window_hours: float = 24,
    window_end: datetime | None = None,
) -> None:
    # An accident: the token ends up in an exception message.
    raise AgentApiRejectedError(
        f"Agent API answered 401 to Authorization: Bearer {TOKEN}; check the "
        "agentapi-cred Secret",
        status=401,
    )


@flow(
    timeout_seconds=1,
    on_failure=[notify_run_ended_badly],
    on_crashed=[notify_run_ended_badly],
)
async def slow_flow(notification_block: str | None = None) -> None:
    await asyncio.sleep(30)


@flow(on_failure=[notify_run_ended_badly], on_crashed=[notify_run_ended_badly])
def crashing_flow(notification_block: str | None = None) -> None:
    raise KeyboardInterrupt


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)
    return TOKEN


def test_a_failing_run_sends_exactly_one_message_with_slot_cause_and_link(
    prefect_server, http_receiver, token
):
    _save_webhook_block("ops-alerts", http_receiver.url)
    end = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)

    with temporary_settings({PREFECT_UI_URL: "https://prefect.example/ui"}):
        state = failing_flow(
            notification_block="custom-webhook/ops-alerts",
            window_end=end,
            return_state=True,
        )

    assert state.is_failed()
    assert len(http_receiver.requests) == 1
    message = http_receiver.requests[0]["json"]
    assert "Failed" in message["subject"]
    assert "2026-03-09T13:00:00Z/2026-03-10T13:00:00Z" in message["text"]
    assert "Agent API answered 401" in message["text"]
    assert "agentapi-cred" in message["text"]
    flow_run_id = state.state_details.flow_run_id
    assert f"https://prefect.example/ui/runs/flow-run/{flow_run_id}" in message["text"]
    assert token not in http_receiver.requests[0]["body"]


def test_a_timed_out_run_notifies_once_and_says_so(
    prefect_server, http_receiver, token
):
    _save_webhook_block("ops-timeouts", http_receiver.url)

    state = asyncio.run(slow_flow(notification_block="ops-timeouts", return_state=True))

    assert state.name == "TimedOut"
    assert len(http_receiver.requests) == 1
    message = http_receiver.requests[0]["json"]
    assert "TimedOut" in message["subject"]
    assert "exceeded timeout of 1.0 second(s)" in message["text"]


def test_a_crashed_run_notifies_once(prefect_server, http_receiver, token):
    _save_webhook_block("ops-crashes", http_receiver.url)

    with pytest.raises(KeyboardInterrupt):
        crashing_flow(notification_block="ops-crashes")

    assert len(http_receiver.requests) == 1
    assert "Crashed" in http_receiver.requests[0]["json"]["subject"]


def test_without_a_block_nothing_is_sent(prefect_server, http_receiver, token):
    state = failing_flow(return_state=True)

    assert state.is_failed()
    assert http_receiver.requests == []


def test_a_missing_or_wrong_block_is_a_configuration_error(prefect_server):
    Secret(value="x").save("not-a-notifier", overwrite=True)

    with pytest.raises(ConfigurationError, match="'no-such-block' was not found"):
        asyncio.run(load_notification_block("no-such-block"))
    with pytest.raises(ConfigurationError, match="cannot send notifications"):
        asyncio.run(load_notification_block("secret/not-a-notifier"))


def _flow_run(**parameters: object) -> FlowRun:
    return FlowRun(
        id=uuid.uuid4(),
        name="brisk-heron",
        flow_id=uuid.uuid4(),
        parameters=parameters,
        expected_start_time=datetime(2026, 3, 17, 13, 0, tzinfo=UTC),
    )


def test_the_slot_follows_the_flow_parameters_like_the_flow_does():
    assert slot_of(_flow_run()) == "2026-03-16T13:00:00Z/2026-03-17T13:00:00Z"
    assert (
        slot_of(_flow_run(window_hours=6, window_end="2026-03-10T13:00:00+00:00"))
        == "2026-03-10T07:00:00Z/2026-03-10T13:00:00Z"
    )
    assert slot_of(_flow_run(log_files=["a.log"])).startswith("none (log files")


def test_the_message_never_carries_a_credential_or_personal_data(token):
    state = State(
        type="FAILED",
        name="Failed",
        message=(
            f"401 with key=abc123&x=1, sk-proj-0123456789abcdefXYZ, {token}, "
            "for ops@dealership.example"
        ),
    )

    subject, body = failure_message(_flow_run(), state)

    for secret in (token, "abc123", "sk-proj-0123", "ops@dealership.example"):
        assert secret not in body
    assert "[secure]" in body and "<email:" in body and "<api_key:" in body
    assert scrub_secrets("Bearer eyJhbGciOi.x.y").startswith("Bearer <bearer:")
    assert subject == "brisk-heron: Failed (2026-03-16T13:00:00Z/2026-03-17T13:00:00Z)"

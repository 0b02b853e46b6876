"""Dispatch: off by default; when on, each action once, to its endpoint or block."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prefect import flow
from prefect.artifacts import Artifact
from prefect.blocks.notifications import CustomWebhookNotificationBlock

from flows.assist import Action, AssistAnswer
from flows.dispatch import (
    DispatchReport,
    DispatchSettings,
    act_on_answer,
    action_idempotency_key,
    outcomes_artifact_key,
)
from flows.errors import DeliveryError
from flows.webhook import RetryPolicy
from flows.window import window_ending_at

TOKEN = "tok-dispatch-0a1b2c3d4e"
WINDOW = window_ending_at(datetime(2026, 3, 10, 13, 0, tzinfo=UTC), 24)
FAST = RetryPolicy(attempts=3, backoff_base_s=0.01, backoff_max_s=0.02)

REFRESH = Action(
    id="refresh-1",
    intent="Re-run the failed completions jobs",
    confidence=0.8,
    requires_approval=False,
    tool="queue_refresh",
    input={"queue": "completions", "reason": "503 burst"},
)
DETAIL = Action(
    id="detail-2",
    intent="Open the error-rate view",
    confidence=0.9,
    requires_approval=False,
    tool="open_pulse_detail",
    input={"metric": "completions.error_rate"},
)
INCIDENT = Action(
    id="incident-3",
    intent="Page the on-call engineer",
    confidence=0.7,
    requires_approval=False,
    tool="open_incident",
    input={
        "title": "Completions 503 burst",
        "severity": "sev2",
        "description": f"Seen with Bearer {TOKEN} from ops@dealership.example",
    },
)
FIX = Action(
    id="fix-4",
    intent="Restart the orchestrator",
    confidence=0.5,
    requires_approval=True,
    tool="auto_fix",
    input={"target": "orchestrator", "fix": "restart"},
)


def _deployment() -> str:
    # Each test its own slot markers on the shared test server.
    return f"dealershipai/orchestrator-{uuid.uuid4().hex[:8]}"


@flow
async def acting(
    actions: list[Action], deployment: str, settings: DispatchSettings
) -> DispatchReport:
    answer = AssistAnswer(summary="s", error_count=2, actions=actions)
    return await act_on_answer(
        answer, window=WINDOW, deployment=deployment, settings=settings
    )


def _act(actions: list[Action], deployment: str, **settings: Any) -> DispatchReport:
    return asyncio.run(
        acting(actions, deployment, DispatchSettings(retry=FAST, **settings))
    )


def _rows(deployment: str) -> list[dict[str, Any]]:
    artifact = Artifact.get(outcomes_artifact_key(deployment))
    assert artifact is not None
    return json.loads(str(artifact.data))


def test_by_default_actions_are_only_recorded(prefect_server, http_receiver):
    deployment = _deployment()

    report = _act(
        [REFRESH, INCIDENT, FIX], deployment, action_endpoints={"*": http_receiver.url}
    )

    assert http_receiver.requests == []
    assert not report.enabled
    assert [(o.decision, o.status) for o in report.outcomes] == [
        ("recorded-only", "not-dispatched")
    ] * 3
    assert [row["action_id"] for row in _rows(deployment)] == [
        "refresh-1",
        "incident-3",
        "fix-4",
    ]


def test_actions_without_approval_go_to_their_endpoint_once_across_reruns(
    prefect_server, http_receiver
):
    deployment = _deployment()
    endpoints = {"queue_refresh": http_receiver.url + "/refresh"}

    first = _act(
        [REFRESH], deployment, dispatch_actions=True, action_endpoints=endpoints
    )
    again = _act(
        [REFRESH], deployment, dispatch_actions=True, action_endpoints=endpoints
    )

    assert len(http_receiver.requests) == 1
    request = http_receiver.requests[0]
    assert request["path"] == "/refresh"
    key = action_idempotency_key(deployment, WINDOW, "refresh-1")
    assert request["headers"]["idempotency-key"] == key
    assert request["json"]["input"] == {"queue": "completions", "reason": "503 burst"}
    assert request["json"]["slot"] == WINDOW.slot()
    assert (first.outcomes[0].status, first.outcomes[0].idempotency_key) == (
        "dispatched",
        key,
    )
    assert again.outcomes[0].status == "already-dispatched"


def test_a_tool_without_an_endpoint_is_reported_not_sent_elsewhere(
    prefect_server, http_receiver
):
    deployment = _deployment()

    report = _act(
        [REFRESH, DETAIL],
        deployment,
        dispatch_actions=True,
        action_endpoints={"queue_refresh": http_receiver.url},
    )

    assert len(http_receiver.requests) == 1
    assert http_receiver.requests[0]["json"]["tool"] == "queue_refresh"
    detail = report.outcomes[1]
    assert (detail.tool, detail.status) == ("open_pulse_detail", "no-endpoint")
    assert "no endpoint is configured for open_pulse_detail" in detail.detail


def test_an_incident_goes_through_the_block_once_per_slot_without_secrets(
    prefect_server, http_receiver, monkeypatch
):
    monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)
    CustomWebhookNotificationBlock(
        name="incidents",
        url=http_receiver.url,
        json_data={"summary": "{{subject}}", "details": "{{body}}"},
    ).save("incidents", overwrite=True)
    deployment = _deployment()
    second_incident = INCIDENT.model_copy(update={"id": "incident-5"})

    report = _act(
        [INCIDENT, second_incident],
        deployment,
        dispatch_actions=True,
        incident_block="incidents",
    )
    rerun = _act(
        [INCIDENT], deployment, dispatch_actions=True, incident_block="incidents"
    )

    assert len(http_receiver.requests) == 1
    sent = http_receiver.requests[0]
    assert sent["json"]["summary"] == "[sev2] Completions 503 burst"
    assert WINDOW.slot() in sent["json"]["details"]
    assert TOKEN not in sent["body"] and "ops@dealership.example" not in sent["body"]
    assert [o.status for o in report.outcomes] == ["dispatched", "already-dispatched"]
    assert rerun.outcomes[0].status == "already-dispatched"


def test_an_incident_without_a_block_is_reported(prefect_server):
    report = _act([INCIDENT], _deployment(), dispatch_actions=True)

    assert report.outcomes[0].status == "no-endpoint"
    assert "no incident_block" in report.outcomes[0].detail


def test_a_failed_dispatch_is_recorded_then_fails_the_step(
    prefect_server, http_receiver
):
    deployment = _deployment()
    http_receiver.statuses = [422]
    endpoints = {
        "queue_refresh": http_receiver.url,
        "open_pulse_detail": http_receiver.url,
    }

    with pytest.raises(DeliveryError, match=r"1 action\(s\) could not be dispatched"):
        _act(
            [REFRESH, DETAIL],
            deployment,
            dispatch_actions=True,
            action_endpoints=endpoints,
        )

    rows = {row["action_id"]: row for row in _rows(deployment)}
    assert (rows["refresh-1"]["status"], rows["refresh-1"]["http_status"]) == (
        "failed",
        422,
    )
    assert rows["detail-2"]["status"] == "dispatched"
    # The failed one was not marked as sent: a rerun of the slot tries it again.
    retry = _act(
        [REFRESH, DETAIL], deployment, dispatch_actions=True, action_endpoints=endpoints
    )
    assert [o.status for o in retry.outcomes] == ["dispatched", "already-dispatched"]


def test_the_endpoint_token_is_sent_but_never_recorded(
    prefect_server, http_receiver, monkeypatch
):
    monkeypatch.setenv("ACTION_ENDPOINT_TOKEN", "act-secret-99")
    deployment = _deployment()

    report = _act(
        [REFRESH],
        deployment,
        dispatch_actions=True,
        action_endpoints={"*": http_receiver.url},
    )

    assert (
        http_receiver.requests[0]["headers"]["authorization"] == "Bearer act-secret-99"
    )
    assert "act-secret-99" not in report.model_dump_json()
    assert "act-secret-99" not in json.dumps(_rows(deployment))


def test_an_incident_whose_input_does_not_fit_the_schema_is_reported(
    prefect_server, http_receiver
):
    CustomWebhookNotificationBlock(
        name="incidents-2", url=http_receiver.url, json_data={"t": "{{subject}}"}
    ).save("incidents-2", overwrite=True)
    deployment = _deployment()
    bad = INCIDENT.model_copy(update={"input": {"title": "x", "severity": "sev9"}})

    with pytest.raises(DeliveryError, match="does not fit the open_incident schema"):
        _act([bad], deployment, dispatch_actions=True, incident_block="incidents-2")

    assert http_receiver.requests == []
    assert _rows(deployment)[0]["status"] == "failed"


def test_a_missing_incident_block_is_recorded_and_the_others_still_go(
    prefect_server, http_receiver
):
    deployment = _deployment()

    with pytest.raises(DeliveryError, match="'no-such-pager' was not found"):
        _act(
            [INCIDENT, REFRESH],
            deployment,
            dispatch_actions=True,
            incident_block="no-such-pager",
            action_endpoints={"queue_refresh": http_receiver.url},
        )

    assert [r["json"]["action_id"] for r in http_receiver.requests] == ["refresh-1"]
    assert [row["status"] for row in _rows(deployment)] == ["failed", "dispatched"]

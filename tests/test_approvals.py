"""Approvals: the typed form, its verdicts, and a real pause, resume and timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from prefect import flow
from prefect.artifacts import Artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.exceptions import Pause
from prefect.flow_engine import run_flow_async
from prefect.flow_runs import resume_flow_run

from flows.approvals import (
    actions_digest,
    approval_form_for,
    decide,
)
from flows.assist import Action, AssistAnswer
from flows.dispatch import DispatchSettings, act_on_answer, outcomes_artifact_key
from flows.window import window_ending_at

WINDOW = window_ending_at(datetime(2026, 3, 10, 13, 0, tzinfo=UTC), 24)


def _actions() -> list[Action]:
    return [
        Action(
            id="fix-1",
            intent="Raise the rate limit of the orchestrator's OpenAI key",
            confidence=0.72,
            requires_approval=True,
            tool="auto_fix",
            input={"target": "orchestrator", "fix": "raise-rate-limit"},
            preview="rate limit 60 -> 120 rpm",
        ),
        Action(
            id="inject-2",
            intent="Show a degraded-service banner",
            confidence=0.41,
            requires_approval=True,
            tool="site_inject",
            input={"site_id": "s-9", "snippet": "Replies may be slow"},
        ),
    ]


def test_the_form_lists_each_action_and_rejects_unless_approved():
    form = approval_form_for(_actions())
    schema = form.model_json_schema()

    assert set(schema["properties"]) == {"approver", "action_1", "action_2"}
    first = schema["properties"]["action_1"]
    assert first["title"] == "fix-1: auto_fix (confidence 0.72)"
    assert "Raise the rate limit" in first["description"]
    assert "rate limit 60 -> 120 rpm" in first["description"]
    assert first["enum"] == ["approve", "reject"]
    assert first["default"] == "reject"
    assert "| action_2 | inject-2 | site_inject |" in form._description


def test_decisions_follow_the_form_and_a_blank_form_approves_nothing():
    actions = _actions()
    form = approval_form_for(actions)

    chosen = decide(form(action_1="approve", approver=" sam "), actions)
    blank = decide(form(), actions)

    assert [(d.action_id, d.verdict, d.approver) for d in chosen] == [
        ("fix-1", "approved", "sam"),
        ("inject-2", "rejected", "sam"),
    ]
    assert [d.verdict for d in blank] == ["rejected", "rejected"]


def test_a_changed_action_set_gets_a_different_pause_key():
    actions = _actions()
    changed = [actions[0].model_copy(update={"input": {"target": "x", "fix": "y"}})]

    assert actions_digest(actions) == actions_digest(_actions())
    assert actions_digest(actions) != actions_digest(changed + actions[1:])


# --- a real pause under the test server ------------------------------------------


@flow
async def acting(deployment: str, endpoint: str, timeout_seconds: int) -> Any:
    settings = DispatchSettings(
        dispatch_actions=True,
        approval_timeout_seconds=timeout_seconds,
        approval_poll_seconds=1,
        action_endpoints={"*": endpoint},
    )
    answer = AssistAnswer(summary="s", error_count=1, actions=_actions())
    report = await act_on_answer(
        answer, window=WINDOW, deployment=deployment, settings=settings
    )
    return report.model_dump(mode="json")


def _start(deployment: str, endpoint: str, timeout_seconds: int) -> dict[str, Any]:
    run_name = f"approval-{uuid.uuid4().hex[:8]}"
    box: dict[str, Any] = {"name": run_name}

    def target() -> None:
        box["state"] = asyncio.run(
            acting.with_options(flow_run_name=run_name)(
                deployment, endpoint, timeout_seconds, return_state=True
            )
        )

    box["thread"] = threading.Thread(target=target, daemon=True)
    box["thread"].start()
    return box


def _wait_until_paused(run_name: str, seconds: float = 60) -> uuid.UUID:
    deadline = time.monotonic() + seconds
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[run_name]))
            )
            if runs and runs[0].state and runs[0].state.is_paused():
                return runs[0].id
            time.sleep(0.3)
    raise AssertionError(f"flow run {run_name} never paused")


def _outcomes(deployment: str) -> list[dict[str, Any]]:
    artifact = Artifact.get(outcomes_artifact_key(deployment))
    assert artifact is not None
    return json.loads(artifact.data)  # type: ignore[arg-type]


@pytest.mark.slow
def test_only_the_approved_action_runs_and_exactly_once(prefect_server, http_receiver):
    deployment = f"ns/approve-{uuid.uuid4().hex[:6]}"
    run = _start(deployment, http_receiver.url, timeout_seconds=60)
    flow_run_id = _wait_until_paused(run["name"])

    assert http_receiver.requests == []
    resume_flow_run(flow_run_id, run_input={"action_1": "approve", "approver": "sam"})
    run["thread"].join(60)

    assert run["state"].is_completed()
    assert len(http_receiver.requests) == 1
    sent = http_receiver.requests[0]["json"]
    assert (sent["action_id"], sent["decision"], sent["approver"]) == (
        "fix-1",
        "approved",
        "sam",
    )
    rows = {row["action_id"]: row for row in _outcomes(deployment)}
    assert rows["fix-1"]["status"] == "dispatched"
    assert (rows["inject-2"]["decision"], rows["inject-2"]["status"]) == (
        "rejected",
        "not-dispatched",
    )


@pytest.mark.slow
def test_a_rejected_form_dispatches_nothing(prefect_server, http_receiver):
    deployment = f"ns/reject-{uuid.uuid4().hex[:6]}"
    run = _start(deployment, http_receiver.url, timeout_seconds=60)
    flow_run_id = _wait_until_paused(run["name"])

    resume_flow_run(flow_run_id, run_input={"action_1": "reject", "action_2": "reject"})
    run["thread"].join(60)

    assert run["state"].is_completed()
    assert http_receiver.requests == []
    assert {row["decision"] for row in _outcomes(deployment)} == {"rejected"}


@pytest.mark.slow
def test_a_timed_out_approval_dispatches_nothing(prefect_server, http_receiver):
    deployment = f"ns/timeout-{uuid.uuid4().hex[:6]}"
    run = _start(deployment, http_receiver.url, timeout_seconds=2)
    run["thread"].join(60)

    assert run["state"].is_failed()
    assert http_receiver.requests == []
    rows = _outcomes(deployment)
    assert [(r["decision"], r["status"]) for r in rows] == [
        ("timed-out", "not-dispatched"),
        ("timed-out", "not-dispatched"),
    ]


# --- a real suspension of a deployment's run, and its re-execution ----------------


AUTOMATIC = Action(
    id="refresh-0",
    intent="Re-run the failed completions jobs",
    confidence=0.8,
    requires_approval=False,
    tool="queue_refresh",
    input={"queue": "completions", "reason": "503 burst"},
)


@flow(name="approvals-under-a-deployment")
async def acting_for_a_deployment(deployment: str, endpoint: str) -> Any:
    settings = DispatchSettings(
        dispatch_actions=True,
        approval_timeout_seconds=120,
        action_endpoints={"*": endpoint},
    )
    answer = AssistAnswer(summary="s", error_count=1, actions=[AUTOMATIC, *_actions()])
    report = await act_on_answer(
        answer, window=WINDOW, deployment=deployment, settings=settings
    )
    return report.model_dump(mode="json")


@pytest.mark.slow
def test_a_deployment_run_suspends_and_its_rerun_sends_nothing_twice(
    prefect_server, http_receiver
):
    deployment = f"ns/suspend-{uuid.uuid4().hex[:6]}"
    parameters = {"deployment": deployment, "endpoint": http_receiver.url}
    deployment_id = acting_for_a_deployment.to_deployment(
        name=f"suspend-{uuid.uuid4().hex[:6]}"
    ).apply()

    async def run_once(flow_run_id: uuid.UUID | None) -> Any:
        async with get_client() as client:
            if flow_run_id is None:
                flow_run = await client.create_flow_run_from_deployment(
                    deployment_id, parameters=parameters
                )
            else:
                flow_run = await client.read_flow_run(flow_run_id)
        # What a worker does: run the deployment's flow under that flow run; a
        # suspension ends the process with `Pause`.
        with contextlib.suppress(Pause):
            await run_flow_async(
                acting_for_a_deployment,
                flow_run=flow_run,
                parameters=parameters,
                return_type="state",
            )
        async with get_client() as client:
            return await client.read_flow_run(flow_run.id)

    first = asyncio.run(run_once(None))
    assert first.state.name == "Suspended"
    assert [r["json"]["action_id"] for r in http_receiver.requests] == ["refresh-0"]

    resume_flow_run(first.id, run_input={"action_2": "approve", "approver": "kim"})
    second = asyncio.run(run_once(first.id))

    assert second.state.is_completed()
    sent = [r["json"]["action_id"] for r in http_receiver.requests]
    assert sent == ["refresh-0", "inject-2"]
    rows = {row["action_id"]: row for row in _outcomes(deployment)}
    assert rows["refresh-0"]["status"] == "already-dispatched"
    assert (rows["inject-2"]["status"], rows["inject-2"]["approver"]) == (
        "dispatched",
        "kim",
    )
    assert rows["fix-1"]["decision"] == "rejected"

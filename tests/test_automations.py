"""Automations: applied by name (twice = once), and a failed run really notifies."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import pytest
from prefect import flow
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed, Running

from flows.automations import (
    DEFINITIONS,
    apply_automations,
    automations_main,
    load_definitions,
)
from flows.errors import ConfigurationError

FAILED = "orchestrator-completions-agent-weekly-failed"
NOT_COMPLETED = "orchestrator-completions-agent-weekly-not-completed"


def _read_by_name(name: str) -> list:
    async def read() -> list:
        async with get_client() as client:
            return await client.read_automations_by_name(name)

    return asyncio.run(read())


@pytest.fixture
def alerts_block(prefect_server, http_receiver) -> str:
    CustomWebhookNotificationBlock(
        name="automation-alerts",
        url=http_receiver.url,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save("automation-alerts", overwrite=True)

    async def forget_earlier_applies() -> None:
        async with get_client() as client:
            for name in (FAILED, NOT_COMPLETED):
                for automation in await client.read_automations_by_name(name):
                    await client.delete_automation(automation.id)

    asyncio.run(forget_earlier_applies())
    return "custom-webhook/automation-alerts"


def test_applying_twice_leaves_one_automation_per_name(alerts_block, capsys):
    assert automations_main(["apply", "--block", alerts_block]) == 0
    assert automations_main(["apply", "--block", alerts_block]) == 0

    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0:2] for line in printed] == [
        ["created", FAILED],
        ["created", NOT_COMPLETED],
        ["updated", FAILED],
        ["updated", NOT_COMPLETED],
    ]
    failed = _read_by_name(FAILED)
    late = _read_by_name(NOT_COMPLETED)
    assert len(failed) == 1 and len(late) == 1

    trigger = failed[0].trigger
    assert trigger.posture == "Reactive"
    assert trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.TimedOut",
    }
    related = {
        (spec.root["prefect.resource.role"], spec.root["prefect.resource.name"])
        for spec in trigger.match_related
    }
    assert related == {
        ("flow", "orchestrator-completions-agent"),
        ("deployment", "weekly"),
    }
    action = failed[0].actions[0]
    assert action.type == "send-notification"
    block = CustomWebhookNotificationBlock.load("automation-alerts")
    assert action.block_document_id == block._block_document_id

    proactive = late[0].trigger
    assert proactive.posture == "Proactive"
    assert proactive.after == {"prefect.flow-run.Late", "prefect.flow-run.Running"}
    assert "prefect.flow-run.Completed" in proactive.expect
    assert proactive.within == timedelta(minutes=90)


def test_a_hand_made_duplicate_is_folded_into_one(alerts_block):
    block_id = CustomWebhookNotificationBlock.load(
        "automation-alerts"
    )._block_document_id
    definitions = load_definitions(DEFINITIONS, block_document_id=block_id)

    async def create_twice() -> None:
        async with get_client() as client:
            await client.create_automation(definitions[0])
            await client.create_automation(definitions[0])

    asyncio.run(create_twice())
    applied = asyncio.run(apply_automations(definitions[:1]))

    assert applied[0].change == "updated" and applied[0].removed_duplicates >= 1
    assert len(_read_by_name(FAILED)) == 1


def test_an_unknown_block_is_refused_before_anything_is_applied(prefect_server):
    with pytest.raises(ConfigurationError, match="'no-such-alerts' was not found"):
        automations_main(["apply", "--block", "no-such-alerts"])


@flow(name="orchestrator-completions-agent")
def stand_in() -> None:
    """Registers the flow name the automations watch."""


def test_a_failed_run_of_the_watched_deployment_sends_the_notification(
    alerts_block, http_receiver
):
    deployment_name = f"weekly-{uuid.uuid4().hex[:6]}"
    assert (
        automations_main(
            ["apply", "--block", alerts_block, "--deployment", deployment_name]
        )
        == 0
    )
    deployment_id = stand_in.to_deployment(name=deployment_name).apply()

    async def fail_a_run() -> uuid.UUID:
        async with get_client() as client:
            run = await client.create_flow_run_from_deployment(
                deployment_id, parameters={}
            )
            await client.set_flow_run_state(
                run.id, Failed(message="Agent API answered 401"), force=True
            )
            return run.id

    flow_run_id = asyncio.run(fail_a_run())
    deadline = time.monotonic() + 45
    while not http_receiver.requests and time.monotonic() < deadline:
        time.sleep(0.5)

    assert len(http_receiver.requests) == 1
    message = http_receiver.requests[0]["json"]
    assert message["subject"].endswith(
        ": Failed (orchestrator-completions-agent/weekly)"
    )
    assert "What failed: Agent API answered 401" in message["text"]
    assert "Slot: 24 h ending" in message["text"]
    assert f"flow run {flow_run_id}" in message["text"]


@pytest.mark.slow
def test_a_run_still_running_past_the_limit_notifies_and_a_finished_one_does_not(
    alerts_block, http_receiver
):
    deployment_name = f"weekly-{uuid.uuid4().hex[:6]}"
    block_id = CustomWebhookNotificationBlock.load(
        "automation-alerts"
    )._block_document_id
    late = load_definitions(
        DEFINITIONS, block_document_id=block_id, deployment=deployment_name
    )[1]
    # The file says 90 minutes; 10 s is the shortest a proactive trigger allows.
    quick = late.model_copy(
        update={
            "name": f"{late.name}-{deployment_name}",
            "trigger": late.trigger.model_copy(
                update={"within": timedelta(seconds=10)}
            ),
        }
    )
    asyncio.run(apply_automations([quick]))
    deployment_id = stand_in.to_deployment(name=deployment_name).apply()

    async def start_two_runs() -> tuple[str, str]:
        async with get_client() as client:
            stuck = await client.create_flow_run_from_deployment(deployment_id)
            done = await client.create_flow_run_from_deployment(deployment_id)
            for run in (stuck, done):
                await client.set_flow_run_state(run.id, Running(), force=True)
            await client.set_flow_run_state(done.id, Completed(), force=True)
            return stuck.name, done.name

    stuck_name, done_name = asyncio.run(start_two_runs())
    deadline = time.monotonic() + 60
    while not http_receiver.requests and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(6)  # one more evaluation round: the finished run must stay quiet

    assert len(http_receiver.requests) == 1
    message = http_receiver.requests[0]["json"]
    assert message["subject"].startswith(f"{stuck_name}: not completed")
    assert "it is Running" in message["text"]
    assert done_name not in http_receiver.requests[0]["body"]

"""The Pulse tile: once per slot across reruns, retried, never carrying secrets."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest
from prefect import flow

from flows.assist import Action, AssistAnswer
from flows.errors import DeliveryError
from flows.pulse import publish_tile, publish_tile_task
from flows.webhook import RetryPolicy, post_json
from flows.window import window_ending_at

TOKEN = "tok-pulse-51c0ffee9d"
WINDOW = window_ending_at(datetime(2026, 3, 10, 13, 0, tzinfo=UTC), 24)
FAST = RetryPolicy(attempts=3, backoff_base_s=0.01, backoff_max_s=0.02)


SUMMARY = "3 of 40 completions calls failed (429, 503)."


def _answer(summary: str = SUMMARY) -> AssistAnswer:
    return AssistAnswer(
        summary=summary,
        error_count=3,
        actions=[
            Action(
                id="a1",
                intent="Show the error rate",
                confidence=0.9,
                requires_approval=False,
                tool="open_pulse_detail",
                input={"metric": "completions.error_rate"},
            ),
            Action(
                id="a2",
                intent="Restart the failed queue",
                confidence=0.6,
                requires_approval=False,
                tool="auto_fix",  # doctrine turns this into requires_approval
                input={"target": "orchestrator", "fix": "restart"},
            ),
        ],
    )


def _publish(url: str | None, answer: AssistAnswer | None = None):
    return asyncio.run(
        publish_tile(
            answer or _answer(),
            window=WINDOW,
            deployment="dealershipai/orchestrator",
            webhook_url=url,
            policy=FAST,
        )
    )


def test_a_rerun_of_the_slot_posts_the_same_tile_under_the_same_key(http_receiver):
    first = _publish(http_receiver.url)
    second = _publish(http_receiver.url)

    assert first.posted and second.posted
    keys = [r["headers"]["idempotency-key"] for r in http_receiver.requests]
    assert len(keys) == 2 and keys[0] == keys[1] == first.idempotency_key
    assert len(http_receiver.applied) == 1
    tile = http_receiver.requests[0]["json"]
    assert (
        tile["tile_id"]
        == "completions-agent-dealershipai-orchestrator-20260310t130000z"
    )
    assert tile["slot"] == "2026-03-09T13:00:00Z/2026-03-10T13:00:00Z"
    assert tile["summary"] == SUMMARY
    assert tile["error_count"] == 3
    assert tile["actions_needing_approval"] == 1
    assert tile["actions_total"] == 2
    assert tile["window_start"] == "2026-03-09T13:00:00Z"


def test_another_slot_gets_another_tile_and_key(http_receiver):
    _publish(http_receiver.url)
    asyncio.run(
        publish_tile(
            _answer(),
            window=window_ending_at(datetime(2026, 3, 17, 13, 0, tzinfo=UTC), 24),
            deployment="dealershipai/orchestrator",
            webhook_url=http_receiver.url,
        )
    )

    assert len(http_receiver.applied) == 2
    ids = {r["json"]["tile_id"] for r in http_receiver.requests}
    assert len(ids) == 2


def test_transient_failures_are_retried_with_the_same_key(http_receiver):
    http_receiver.statuses = [503, 429]
    http_receiver.retry_after = "0"

    publication = _publish(http_receiver.url)

    assert publication.detail == "HTTP 200 after 3 attempt(s)"
    assert [r["status"] for r in http_receiver.requests] == [503, 429, 200]
    assert {r["headers"]["idempotency-key"] for r in http_receiver.requests} == {
        publication.idempotency_key
    }


def test_a_refused_tile_is_not_retried_and_the_error_names_status_and_host(
    http_receiver,
):
    http_receiver.statuses = [400]

    with pytest.raises(DeliveryError, match="answered HTTP 400") as caught:
        _publish(http_receiver.url + "/hooks/s3cr3t-path")

    assert len(http_receiver.requests) == 1
    assert caught.value.status == 400
    assert "s3cr3t-path" not in str(caught.value)


def test_giving_up_after_the_last_attempt_says_so(http_receiver):
    http_receiver.statuses = [502, 502, 502]

    with pytest.raises(DeliveryError, match="gave up after 3 attempt"):
        _publish(http_receiver.url)

    assert len(http_receiver.requests) == 3


def test_a_retry_after_beyond_the_cap_fails_instead_of_sleeping(http_receiver):
    http_receiver.statuses = [429]
    http_receiver.retry_after = "3600"

    with pytest.raises(DeliveryError, match="3600 s, more than the 120 s cap"):
        asyncio.run(
            post_json(http_receiver.url, {}, idempotency_key="k", what="the tile")
        )
    assert len(http_receiver.requests) == 1


def test_an_unreachable_receiver_is_retried_then_reported():
    with pytest.raises(DeliveryError, match="ConnectError"):
        asyncio.run(
            post_json(
                "http://127.0.0.1:9", {}, idempotency_key="k", what="x", policy=FAST
            )
        )


def test_not_configured_skips_with_one_info_line(http_receiver, monkeypatch, caplog):
    monkeypatch.delenv("PULSE_WEBHOOK_URL", raising=False)
    caplog.set_level(logging.INFO, logger="flows.pulse")

    publication = _publish(None)

    assert not publication.posted
    assert http_receiver.requests == []
    infos = [r for r in caplog.records if r.name == "flows.pulse"]
    assert len(infos) == 1 and "tile not posted" in infos[0].getMessage()


def test_the_environment_variable_configures_the_webhook(http_receiver, monkeypatch):
    monkeypatch.setenv("PULSE_WEBHOOK_URL", http_receiver.url)

    assert _publish(None).posted
    assert len(http_receiver.requests) == 1


def test_the_tile_never_carries_the_token_or_personal_data(http_receiver, monkeypatch):
    monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)
    leaky = (
        f"Calls failed with Authorization: Bearer {TOKEN} for jane.doe@example.com, "
        "key=AIzaSyExample123"
    )

    _publish(http_receiver.url, _answer(leaky))

    body = http_receiver.requests[0]["body"]
    assert TOKEN not in body
    assert "jane.doe@example.com" not in body
    assert "AIzaSyExample123" not in body
    assert "Calls failed with" in body


def test_inside_a_run_the_tile_links_to_the_flow_run(prefect_server, http_receiver):
    @flow
    async def publishing() -> str:
        from prefect.runtime import flow_run

        await publish_tile_task(
            _answer(),
            window=WINDOW,
            deployment="dealershipai/orchestrator",
            webhook_url=http_receiver.url,
        )
        return str(flow_run.id)

    flow_run_id = asyncio.run(publishing())

    link = http_receiver.requests[0]["json"]["flow_run_url"]
    assert link.endswith(f"/runs/flow-run/{flow_run_id}")

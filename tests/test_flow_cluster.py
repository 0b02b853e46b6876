"""The whole flow on the cluster source: a fake Kubernetes API reached through a
kubeconfig and the real client, and the reference Agent API over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from flows.agent_server import serve_in_background
from flows.assist import AssistRequest
from flows.errors import PermissionDenied
from flows.flow import orchestrator_completions_agent
from tests.kube_fake import Container, FakeCluster, Pod, nanos, serve, write_kubeconfig

pytestmark = pytest.mark.usefixtures("prefect_server")

SLOT = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)
AGENT_TOKEN = "flow-cluster-agent-token-91ce"
CALL = (
    "{level} httpx: HTTP Request: POST https://api.openai.com/v1/chat/completions "
    '"HTTP/1.1 {status}"'
)


def _line(hours_before_slot: float, text: str) -> tuple[int, bytes]:
    return nanos(SLOT - timedelta(hours=hours_before_slot)), text.encode()


def _cluster() -> FakeCluster:
    cluster = FakeCluster(now=SLOT + timedelta(minutes=5))
    cluster.add_deployment("orchestrator", {"app": "orchestrator"})
    cluster.pods.append(
        Pod(
            "orchestrator-a",
            [
                Container(
                    "orchestrator",
                    [
                        _line(30, CALL.format(level="INFO", status="500 Oops")),
                        _line(20, CALL.format(level="INFO", status="200 OK")),
                        _line(10, "INFO job done"),
                        _line(2, CALL.format(level="INFO", status="503 Unavailable")),
                    ],
                )
            ],
        )
    )
    cluster.pods.append(
        Pod(
            "orchestrator-b",
            [
                Container(
                    "orchestrator",
                    [
                        _line(5, CALL.format(level="INFO", status="429 Too Many")),
                        _line(-1, CALL.format(level="INFO", status="200 OK")),
                    ],
                )
            ],
        )
    )
    return cluster


def _run(**parameters):
    return asyncio.run(orchestrator_completions_agent(window_end=SLOT, **parameters))


def test_every_pod_is_read_for_the_window_and_a_rerun_reuses_the_request(
    tmp_path: Path, monkeypatch, http_receiver
):
    cluster = _cluster()
    monkeypatch.setenv("AGENTAPI_TOKEN", AGENT_TOKEN)
    tile = f"{http_receiver.url}/tiles"
    with serve(cluster) as url, serve_in_background(token=AGENT_TOKEN) as agent:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", url)))
        answer = _run(agent_api_base=agent.url, pulse_webhook_url=tile)
        reads_after_first_run = len(cluster.log_requests())
        rerun_answer = _run(agent_api_base=agent.url, pulse_webhook_url=tile)

    # Both pods read, with timestamps and no tail limit.
    assert {r.path.split("/")[6] for r in cluster.log_requests()} == {
        "orchestrator-a",
        "orchestrator-b",
    }
    assert all(
        r.param("timestamps") in ("true", "True") for r in cluster.log_requests()
    )
    assert all(r.param("tailLines") is None for r in cluster.log_requests())

    request = AssistRequest.model_validate(agent.received[0].json())
    context = request.context
    assert context.source == "cluster"
    assert (context.namespace, context.deployment) == ("dealershipai", "orchestrator")
    # Only [start, end): the call 30 h before the slot and the one after it are out.
    assert context.matches == 3
    assert context.statistics.by_status == {"200": 1, "429": 1, "503": 1}
    assert context.statistics.by_pod == {"orchestrator-a": 2, "orchestrator-b": 1}
    assert context.window is not None
    assert (context.window.start, context.window.end) == (
        SLOT - timedelta(hours=24),
        SLOT,
    )
    assert [call.status for call in context.selected] == [503, 429, 200]

    # The rerun of the slot posts the saved request again, with the same key,
    # without reading the logs a second time.
    assert len(cluster.log_requests()) == reads_after_first_run
    assert len(agent.received) == 2
    first, second = agent.received
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
    assert first.body == second.body
    assert rerun_answer == answer

    # One Pulse tile per slot: the rerun sends the same key, and it is applied once.
    assert len(http_receiver.requests) == 2
    keys = {r["headers"]["idempotency-key"] for r in http_receiver.requests}
    assert len(keys) == 1
    (applied,) = http_receiver.applied.values()
    assert applied["error_count"] == answer.error_count
    assert applied["actions_needing_approval"] == len(answer.actions_needing_approval)
    assert AGENT_TOKEN not in http_receiver.requests[0]["body"]

    report = Artifact.get("dealershipai-orchestrator-completions-report")
    assert report is not None
    assert "- Window: 2026-03-09T13:00:00Z to 2026-03-10T13:00:00Z" in report.data
    assert "- By pod: orchestrator-a 2, orchestrator-b 1" in report.data


def test_missing_rbac_fails_at_once_naming_the_permission(tmp_path: Path, monkeypatch):
    cluster = _cluster()
    cluster.forbidden.add(("get", "pods/log"))
    monkeypatch.setenv("AGENTAPI_TOKEN", AGENT_TOKEN)
    with serve(cluster) as url, serve_in_background(token=AGENT_TOKEN) as agent:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", url)))
        with pytest.raises(PermissionDenied) as caught:
            # Another slot than the test above, whose saved request would be reused.
            _run(agent_api_base=agent.url, window_hours=12)

    message = str(caught.value)
    assert "get pods/log" in message
    assert "system:serviceaccount:dealershipai:log-reader" in message
    # Not retried: the Deployment was read once, and nothing was posted.
    deployment_reads = [r for r in cluster.requests if "/deployments/" in r.path]
    assert len(deployment_reads) == 1
    assert agent.received == []


def test_a_failed_run_sends_one_alert_with_the_slot_and_no_token(
    tmp_path: Path, monkeypatch, http_receiver
):
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    CustomWebhookNotificationBlock(
        name="flow-alerts",
        url=f"{http_receiver.url}/alerts",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save("flow-alerts", overwrite=True)
    monkeypatch.setenv("AGENTAPI_TOKEN", "wrong-" + AGENT_TOKEN)
    cluster = _cluster()
    with serve(cluster) as url, serve_in_background(token=AGENT_TOKEN) as agent:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", url)))
        with pytest.raises(Exception, match="401"):
            # Another slot than the tests above, whose saved requests would be reused.
            _run(
                agent_api_base=agent.url,
                window_hours=6,
                notification_block="flow-alerts",
            )

    assert len(http_receiver.requests) == 1
    alert = http_receiver.requests[0]["json"]
    assert "2026-03-10T07:00:00Z/2026-03-10T13:00:00Z" in alert["text"]
    assert "401" in alert["text"]
    assert AGENT_TOKEN not in http_receiver.requests[0]["body"]

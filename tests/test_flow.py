"""The whole flow under a Prefect test server, posting over HTTP to the reference
Agent API, on the committed 24-hour sample."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from flows.agent_server import serve_in_background
from flows.analyser import analyse
from flows.assist import AssistAnswer, AssistRequest
from flows.errors import ConfigurationError
from flows.flow import orchestrator_completions_agent

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orchestrator-24h.log"
TOKEN = "flow-test-token-7f3a9c"

pytestmark = pytest.mark.usefixtures("prefect_server")


def _run(**parameters):
    return asyncio.run(orchestrator_completions_agent(**parameters))


def test_flow_posts_the_sample_and_records_the_answer(monkeypatch):
    monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)
    with serve_in_background(token=TOKEN) as server:
        answer = _run(log_files=[str(SAMPLE)], agent_api_base=server.url)

    assert len(server.received) == 1
    received = server.received[0]
    assert received.path == "/v1/assist"
    assert received.token_matched
    assert received.headers["idempotency-key"]
    request = AssistRequest.model_validate(received.json())
    context = request.context
    assert context.source == "files"
    assert context.lines_read == 12135
    assert context.matches == 432
    assert context.statistics.by_status == {
        "200": 382,
        "429": 28,
        "500": 9,
        "503": 13,
    }
    assert len(context.selected) == 5
    assert "Completions calls matched (literal rule" in request.messages[1].content
    assert 'matched (literal rule, include ["POST https", "completions"]): 432.' in (
        request.messages[1].content
    )

    # The answer is the server's, validated; the built-in analyser is the server's
    # brain here, so the same request gives the same answer.
    assert isinstance(answer, AssistAnswer)
    assert answer == analyse(request)
    assert answer.error_count == 50

    report = Artifact.get("files-completions-report")
    assert report is not None
    assert "- Completions calls (literal rule): 432" in report.data
    assert f"Error count: **{answer.error_count}**" in report.data
    assert f"Analysed by: Agent API at {server.url}" in report.data
    actions = Artifact.get("files-completions-actions")
    assert actions is not None
    assert [row["id"] for row in _table(actions)] == [a.id for a in answer.actions]
    full = Artifact.get("files-completions-answer")
    assert full is not None
    assert AssistAnswer.model_validate_json(_fenced_json(full.data)) == answer
    for artifact in (report, actions, full):
        assert TOKEN not in str(artifact.data)


def test_without_an_agent_api_a_local_run_uses_the_built_in_analyser(caplog):
    answer = _run(log_files=[str(SAMPLE)], top_n=3)

    assert answer.error_count == 50
    assert "No Agent API base URL is configured" in caplog.text
    report = Artifact.get("files-completions-report")
    assert report is not None
    assert "Analysed by: the built-in analyser" in report.data


def test_a_deployment_run_without_an_agent_api_fails_clearly(monkeypatch):
    # prefect.runtime reads these overrides, as inside a deployment's flow run.
    monkeypatch.setenv(
        "PREFECT__RUNTIME__DEPLOYMENT__ID", "1f0b6c1e-0000-4000-8000-000000000001"
    )
    with pytest.raises(ConfigurationError, match="no Agent API is configured"):
        _run(log_files=[str(SAMPLE)])


def test_dry_run_returns_the_request_and_posts_nothing(monkeypatch):
    monkeypatch.setenv("AGENTAPI_TOKEN", TOKEN)
    with serve_in_background(token=TOKEN) as server:
        request = _run(log_files=[str(SAMPLE)], agent_api_base=server.url, dry_run=True)

    assert server.received == []
    assert isinstance(request, AssistRequest)
    assert request.context.matches == 432


def _table(artifact: Artifact) -> list[dict]:
    import json

    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def _fenced_json(markdown: str) -> str:
    return markdown.split("\n", 1)[1].rsplit("\n", 1)[0]

"""The post step against the reference Agent API over real HTTP, fault by fault.

Each scenario asserts the final state, the attempts, the waits, the message, that
the request was saved before posting, and that the token appears nowhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flows import agent_api
from flows.agent_api import post_assist, post_assist_task
from flows.agent_config import AgentApiConfig
from flows.agent_server import load_script, serve_in_background
from flows.answer import REJECTED_ANSWER_KEY, record_rejected_answer
from flows.assist import AssistAnswer, AssistRequest
from flows.errors import (
    AgentApiError,
    AgentApiRejectedError,
    AgentApiTransientError,
    AnswerValidationError,
)
from flows.redaction import Redactor, redact_request
from flows.request_store import load_saved, save_request
from tests.test_agent_api import FakeClock, sample_request

pytestmark = pytest.mark.slow

# Only this test module uses this token, so finding it anywhere is a leak.
TOKEN = "tok-matrix-4Hq9Zt2Wv7Lp3Kx8Rb6Nc1Md5"
CASES = Path(__file__).resolve().parent / "cases"
CASE_20 = CASES / "20-agent-api-retry-sequences.json"

# jitter 0.5 and a 1 s base: the backoff waits are 0.75, 1.5, 3.0 s.
BACKOFF = [0.75, 1.5, 3.0]


def assist_shaped(body: str | None) -> str | None:
    """A case 20/23 answer body in the Assist answer's shape, summary kept."""
    if body is None:
        return None
    simple = json.loads(body.lstrip("\ufeff"))
    shaped = {
        "summary": simple["summary"],
        "error_count": len(simple.get("findings", [])),
        "recommendations": [],
        "actions": [],
    }
    return ("\ufeff" if body.startswith("\ufeff") else "") + json.dumps(shaped)


def case_20(name: str) -> list[dict[str, Any]]:
    responses = [r.model_dump() for r in load_script(CASE_20, name)]
    for response in responses:
        if response["status"] == 200:
            response["body"] = assist_shaped(response["body"])
    return responses


def raw_http(text: str) -> dict[str, Any]:
    """A scripted response from the raw HTTP text of a case file."""
    head, _, body = text.strip("\n").partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = {}
    for line in header_lines:
        if line.startswith("#"):
            continue
        name, _, value = line.partition(":")
        # The server computes its own framing headers.
        if name.lower() not in ("content-length", "connection"):
            headers[name.lower()] = value.strip()
    return {"status": int(status_line.split()[1]), "headers": headers, "body": body}


def case_22() -> dict[str, Any]:
    return raw_http((CASES / "22-html-502-body.txt").read_text())


def case_23() -> dict[str, Any]:
    response = raw_http((CASES / "23-json-bom.headers.txt").read_text())
    response["body"] = assist_shaped((CASES / "23-json-bom.json").read_text("utf-8"))
    return response


def case_24(letter: str) -> dict[str, Any]:
    sections = (CASES / "24-retry-after.txt").read_text().split("### response ")[1:]
    by_letter = {part[0]: part.split("\n", 1)[1] for part in sections}
    return raw_http(by_letter[letter])


def answer_body(**fields: Any) -> str:
    answer: dict[str, Any] = {"summary": "fine", "error_count": 0, "actions": []}
    answer.update(fields)
    return json.dumps(answer)


OK = {"status": 200}


@dataclass
class Scenario:
    name: str
    script: list[dict[str, Any]]
    outcome: type[AgentApiError] | None
    attempts: int
    waits: list[float]
    message: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    repeat_last: bool = False
    server_token: str = TOKEN
    check: Callable[[Any], None] | None = None


def _summary_is(text: str) -> Callable[[Any], None]:
    def check(answer: Any) -> None:
        assert answer.summary == text

    return check


def _approval_forced(answer: Any) -> None:
    assert [(a.tool, a.requires_approval) for a in answer.actions] == [
        ("site_inject", True),
        ("open_incident", False),
    ]


SCENARIOS = [
    Scenario("ok-first-try", [], None, 1, [], check=_summary_is("analysed")),
    Scenario(
        "case20-transient-then-ok",
        case_20("transient-then-ok"),
        None,
        3,
        [0.75, 2.0],
        check=_summary_is("5 calls, 1 rate-limited"),
    ),
    Scenario(
        "case20-client-error",
        case_20("client-error"),
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 400", "payload.lines must not be empty", "Not retried"],
    ),
    Scenario(
        "case20-auth-error",
        case_20("auth-error"),
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 401", "refused the token", "agentapi-cred", "AGENTAPI_TOKEN"],
    ),
    Scenario(
        "case20-always-503",
        case_20("always-503"),
        AgentApiTransientError,
        4,
        BACKOFF,
        ["HTTP 503", "Gave up after 4 attempt(s)"],
    ),
    Scenario(
        "case20-read-timeout-after-send",
        case_20("read-timeout-after-send"),
        None,
        2,
        [0.75],
        config={"read_timeout_s": 1.0},
        check=_summary_is("ok"),
    ),
    Scenario("case22-html-502-then-ok", [case_22(), OK], None, 2, [0.75]),
    Scenario(
        "case22-html-502-always",
        [case_22()],
        AgentApiTransientError,
        4,
        BACKOFF,
        ["HTTP 502 Bad Gateway", "'502 Bad Gateway 502 Bad Gateway'", "Gave up"],
        repeat_last=True,
    ),
    Scenario(
        "case23-bom",
        [case_23()],
        None,
        1,
        [],
        check=_summary_is("3 distinct endpoints, 1 error burst"),
    ),
    Scenario("case24-a-retry-after-seconds", [case_24("A"), OK], None, 2, [7.0]),
    Scenario("case24-b-retry-after-date", [case_24("B"), OK], None, 2, [30.0]),
    Scenario(
        "case24-c-retry-after-over-cap",
        [case_24("C")],
        AgentApiTransientError,
        1,
        [],
        ["retry after 3600 s", "more than the 120 s cap", "daily quota exhausted"],
    ),
    Scenario("case24-d-retry-after-garbage", [case_24("D"), OK], None, 2, [0.75]),
    Scenario(
        "retry-after-date-in-the-past",
        [
            {
                "status": 503,
                "headers": {
                    "retry-after": "Tue, 10 Mar 2026 13:00:00 GMT",
                    "date": "Tue, 10 Mar 2026 13:05:00 GMT",
                },
            },
            OK,
        ],
        None,
        2,
        [0.0],
    ),
    Scenario("408-then-ok", [{"status": 408}, OK], None, 2, [0.75]),
    Scenario("425-then-ok", [{"status": 425}, OK], None, 2, [0.75]),
    Scenario("429-without-retry-after", [{"status": 429}, OK], None, 2, [0.75]),
    Scenario("500-then-ok", [{"status": 500}, OK], None, 2, [0.75]),
    Scenario(
        "504-then-ok", [{"status": 504}, {"status": 504}, OK], None, 3, BACKOFF[:2]
    ),
    Scenario(
        "403",
        [{"status": 403, "body": '{"error":"forbidden"}'}],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 403", "forbids this token", "agentapi-cred"],
    ),
    Scenario(
        "404",
        [{"status": 404, "body": "Not Found"}],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 404", "Check AGENTAPI_BASE"],
    ),
    Scenario(
        "409",
        [{"status": 409}],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 409", "same Idempotency-Key", "(empty body)"],
    ),
    Scenario(
        "413",
        [{"status": 413}],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 413", "too large", "top_n"],
    ),
    Scenario(
        "422",
        [{"status": 422, "body": '{"detail":"context.selected: bad"}'}],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 422", "context.selected: bad", "contract"],
    ),
    Scenario("501", [{"status": 501}], AgentApiRejectedError, 1, [], ["HTTP 501"]),
    Scenario(
        "redirect",
        [{"status": 308, "headers": {"location": "https://other.example/v1/assist"}}],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 308", "https://other.example/v1/assist", "redirects are not followed"],
    ),
    Scenario(
        "wrong-token",
        [],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 401", "invalid bearer token", "the AGENTAPI_TOKEN environment variable"],
        server_token="tok-the-server-expects-another-one",
    ),
    Scenario(
        "deadline",
        [{"status": 503}],
        AgentApiTransientError,
        2,
        [7.5],
        ["HTTP 503", "would pass the 20 s deadline"],
        config={"deadline_s": 20.0, "backoff_base_s": 10.0},
        repeat_last=True,
    ),
    Scenario(
        "invalid-confidence",
        [
            {
                "status": 200,
                "body": answer_body(
                    actions=[
                        {
                            "id": "a1",
                            "intent": "x",
                            "confidence": "85%",
                            "requires_approval": False,
                            "tool": "queue_refresh",
                        }
                    ]
                ),
            }
        ],
        AnswerValidationError,
        1,
        [],
        ["actions.0.confidence", "'85%'"],
    ),
    Scenario(
        "undeclared-tool",
        [
            {
                "status": 200,
                "body": answer_body(
                    actions=[
                        {
                            "id": "a1",
                            "intent": "x",
                            "confidence": 0.9,
                            "requires_approval": False,
                            "tool": "delete_namespace",
                        }
                    ]
                ),
            }
        ],
        AnswerValidationError,
        1,
        [],
        ["actions.0.tool", "'delete_namespace'"],
    ),
    Scenario(
        "not-json",
        [{"status": 200, "body": "Sure! Here is my analysis: all good."}],
        AnswerValidationError,
        1,
        [],
        ["not JSON", "b'Sure! Here is my analysis"],
    ),
    Scenario(
        "top-level-array",
        [{"status": 200, "body": "[" + answer_body() + "]"}],
        AnswerValidationError,
        1,
        [],
        ["got a JSON array"],
    ),
    Scenario(
        "empty-200",
        [{"status": 200, "body": ""}],
        AnswerValidationError,
        1,
        [],
        ["empty"],
    ),
    Scenario(
        "oversized",
        [{"status": 200, "body": answer_body(summary="x" * (1024 * 1024))}],
        AnswerValidationError,
        1,
        [],
        ["over the 1048576 cap"],
    ),
    Scenario(
        "fenced-answer",
        [
            {
                "status": 200,
                "body": "```json\n" + answer_body(summary="fenced") + "\n```",
            }
        ],
        None,
        1,
        [],
        check=_summary_is("fenced"),
    ),
    Scenario(
        "approval-forced",
        [
            {
                "status": 200,
                "body": answer_body(
                    actions=[
                        {
                            "id": "a1",
                            "intent": "banner",
                            "confidence": "0.7",
                            "requires_approval": False,
                            "tool": "site_inject",
                            "input": {"site_id": "s1", "snippet": "Degraded"},
                        },
                        {
                            "id": "a2",
                            "intent": "incident",
                            "confidence": 0.6,
                            "requires_approval": False,
                            "tool": "open_incident",
                        },
                    ]
                ),
            }
        ],
        None,
        1,
        [],
        check=_approval_forced,
    ),
    Scenario(
        "token-echoed-in-400",
        [
            {
                "status": 400,
                "body": f'{{"error":"bad header Authorization: Bearer {TOKEN}"}}',
            }
        ],
        AgentApiRejectedError,
        1,
        [],
        ["HTTP 400", "Bearer [token]"],
    ),
    Scenario(
        "token-echoed-in-invalid-answer",
        [{"status": 200, "body": answer_body(error_count=TOKEN, echo=TOKEN)}],
        AnswerValidationError,
        1,
        [],
        ["error_count", "[token]"],
    ),
    Scenario(
        "token-echoed-in-non-json",
        [{"status": 200, "body": f"{TOKEN} is not allowed here"}],
        AnswerValidationError,
        1,
        [],
        ["not JSON", "[token] is not allowed"],
    ),
    Scenario(
        "token-echoed-in-503-page",
        [{"status": 503, "body": f"<html><p>upstream said {TOKEN}</p></html>"}],
        AgentApiTransientError,
        2,
        [0.75],
        ["HTTP 503", "upstream said [token]"],
        config={"max_attempts": 2},
        repeat_last=True,
    ),
]


def matrix_config(url: str, **overrides: Any) -> AgentApiConfig:
    values: dict[str, Any] = {
        "max_attempts": 4,
        "read_timeout_s": 2.0,
        "connect_timeout_s": 5.0,
        "backoff_base_s": 1.0,
        "retry_after_cap_s": 120.0,
        "deadline_s": 300.0,
    }
    values.update(overrides)
    return AgentApiConfig(
        base_url=url,
        token=SecretStr(TOKEN),
        token_source="the AGENTAPI_TOKEN environment variable",
        **values,
    )


def leaky_request() -> AssistRequest:
    """A request whose raw log lines quote the token, redacted as the flow does."""
    request = sample_request(
        lines=[
            "2026-03-10T12:00:01Z INFO httpx HTTP Request: POST "
            "https://api.openai.com/v1/chat/completions "
            '"HTTP/1.1 429 Too Many Requests"'
            f" headers={{'Authorization': 'Bearer {TOKEN}'}}",
            f"2026-03-10T12:00:02Z DEBUG retry with api-key={TOKEN}",
        ]
    )
    return redact_request(request, Redactor.for_run())


def analysed(request: AssistRequest) -> AssistAnswer:
    return AssistAnswer(summary="analysed", error_count=0)


def post_like_the_flow(
    request: AssistRequest, slot_key: str, config: AgentApiConfig, clock: FakeClock
) -> AssistAnswer:
    """Save, then post; a rejected answer is kept as an artifact, as the task does."""
    saved = save_request(request, slot_key)
    try:
        return post_assist(
            request,
            config,
            idempotency_key=saved.idempotency_key,
            clock=clock,
            jitter=lambda: 0.5,
        )
    except AnswerValidationError as error:
        record_rejected_answer(
            error.body or b"", error, session_id=request.session_id, secrets=(TOKEN,)
        )
        raise


def test_there_are_at_least_thirty_scenarios() -> None:
    assert len(SCENARIOS) >= 30
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


# The flow records rejected answers inside the post task; here, outside any run.
@pytest.mark.filterwarnings("ignore:Artifact creation outside:FutureWarning")
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_fault(
    scenario: Scenario, prefect_server: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    request = leaky_request()
    slot_key = f"{request.session_id}-{scenario.name}"
    clock = FakeClock()
    outcome: AssistAnswer | AgentApiError

    with serve_in_background(
        token=scenario.server_token,
        script=[],
        analyse=analysed,
    ) as server:
        server.script(scenario.script, repeat_last=scenario.repeat_last)
        config = matrix_config(server.url, **scenario.config)
        try:
            outcome = post_like_the_flow(request, slot_key, config, clock)
        except AgentApiError as error:
            outcome = error

    # Final state.
    if scenario.outcome is None:
        assert isinstance(outcome, AssistAnswer), outcome
        if scenario.check:
            scenario.check(outcome)
    else:
        assert type(outcome) is scenario.outcome, outcome
        for part in scenario.message:
            assert part in str(outcome)
        assert outcome.url == config.assist_url

    # Attempts, all under one key; and the waits, without sleeping.
    saved = load_saved(slot_key)
    assert saved is not None
    assert len(server.received) == scenario.attempts
    assert {r.headers["idempotency-key"] for r in server.received} == {
        saved.idempotency_key
    }
    assert clock.waits == scenario.waits

    # Saved before posting, as posted.
    assert saved.request == request
    assert [r.json() for r in server.received] == [
        request.model_dump(mode="json")
    ] * scenario.attempts

    # The token: nowhere.
    places = [caplog.text, saved.model_dump_json(), repr(config)]
    if isinstance(outcome, AgentApiError):
        places += [str(outcome), repr(outcome), repr(outcome.args)]
    if isinstance(outcome, AnswerValidationError):
        places += outcome.errors
        places.append(_latest_rejected_artifact())
        assert "What is wrong" in places[-1]
    for place in places:
        assert TOKEN not in place


def _latest_rejected_artifact() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[REJECTED_ANSWER_KEY])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return str(artifact.data)


# --- the task, in a flow, through every failure --------------------------------


def test_the_task_leaks_the_token_nowhere_through_every_failure(
    prefect_server: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prefect import flow

    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    monkeypatch.setattr(agent_api, "DEFAULT_CLOCK", clock)
    # The waits (and so the attempts that fit in a deadline) must be those of the
    # matrix above, which uses the same fixed jitter.
    monkeypatch.setattr(agent_api, "DEFAULT_JITTER", lambda: 0.5)
    failures = [s for s in SCENARIOS if s.outcome is not None]
    request = leaky_request()

    @flow(name="post-fault-matrix")
    async def post_every_failure() -> tuple[str, list[tuple[str, str, int]]]:
        from prefect.runtime import flow_run

        seen = []
        for scenario in failures:
            save_request(request, f"{request.session_id}-task-{scenario.name}")
            with serve_in_background(
                token=scenario.server_token, analyse=analysed
            ) as server:
                server.script(scenario.script, repeat_last=scenario.repeat_last)
                config = matrix_config(server.url, **scenario.config)
                state = await post_assist_task(request, config, return_state=True)
                error = await state.result(raise_on_failure=False)
            seen.append((scenario.name, type(error).__name__, len(server.received)))
        return flow_run.id, seen

    flow_run_id, seen = asyncio.run(post_every_failure())

    assert seen == [
        (s.name, s.outcome.__name__, s.attempts) for s in failures if s.outcome
    ]
    rejected = [s for s in failures if s.outcome is AnswerValidationError]
    artifacts = _rejected_artifacts_of(flow_run_id)
    assert len(artifacts) == len(rejected) == 8
    assert all("## What is wrong" in artifact for artifact in artifacts)
    everything = _everything_prefect_keeps() + caplog.text
    assert "upstream said [token]" in everything  # the search does see messages
    assert TOKEN not in everything


def _rejected_artifacts_of(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[REJECTED_ANSWER_KEY]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    return [str(artifact.data) for artifact in artifacts]


def _everything_prefect_keeps() -> str:
    """Logs, flow and task runs (states, parameters), artifacts, saved requests,
    and the local result storage, as one string."""
    from prefect.client.orchestration import get_client

    async def gather() -> list[Any]:
        async with get_client() as client:
            dumps: list[Any] = []
            offset = 0
            while batch := await client.read_logs(limit=200, offset=offset):
                dumps += batch
                offset += len(batch)
            dumps += await client.read_flow_runs(limit=200)
            dumps += await client.read_task_runs(limit=200)
            dumps += await client.read_artifacts(limit=200)
            dumps += [
                document
                for document in await client.read_block_documents(include_secrets=True)
                if document.block_type and document.block_type.slug != "secret"
            ]
            return dumps

    text = "\n".join(item.model_dump_json() for item in asyncio.run(gather()))
    files = [p for p in Path(os.environ["PREFECT_HOME"]).rglob("*") if p.is_file()]
    # The test server's database holds everything the API stored, byte for byte.
    database = _database_path()
    files += [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    for path in files:
        text += path.read_bytes().decode("utf-8", errors="replace")
    return text


def _database_path() -> Path:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    path = Path(url.split(":///", 1)[1])
    assert path.exists(), path
    return path

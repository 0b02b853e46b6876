"""Error messages for Agent API failures: excerpts and what to check."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from flows.agent_config import AgentApiConfig
from flows.http_errors import describe_rejection, excerpt

SECRET = "tok-http-errors-5Gm2Qx8Lw3Ns"


def config() -> AgentApiConfig:
    return AgentApiConfig(
        base_url="https://agent.example",
        token=SecretStr(SECRET),
        token_source="the Prefect Secret block 'agentapi-cred'",
    )


def test_an_html_error_page_becomes_its_text(cases_dir: Path) -> None:
    page = (cases_dir / "22-html-502-body.txt").read_text().split("\n\n", 1)[1]
    assert excerpt(page.encode()) == "'502 Bad Gateway 502 Bad Gateway'"


def test_a_long_body_is_cut_and_an_empty_one_said_so() -> None:
    assert excerpt(b"x" * 500, limit=10) == "'xxxxxxxxxx...'"
    assert excerpt(b" \n ") == "(empty body)"


def test_the_token_and_personal_data_never_reach_the_message() -> None:
    body = f'{{"error":"bad token {SECRET}", "user":"ops@example.com"}}'.encode()
    shown = excerpt(body, SECRET)
    assert SECRET not in shown
    assert "ops@example.com" not in shown
    assert "bad token [token]" in shown


@pytest.mark.parametrize(
    ("status", "parts"),
    [
        (401, ["HTTP 401 Unauthorized", "refused the token", "'agentapi-cred'"]),
        (403, ["HTTP 403 Forbidden", "forbids this token", "AGENTAPI_TOKEN"]),
        (404, ["HTTP 404 Not Found", "Check AGENTAPI_BASE"]),
        (409, ["HTTP 409 Conflict", "same Idempotency-Key"]),
        (413, ["HTTP 413 Request Entity Too Large", "lower top_n"]),
        (422, ["HTTP 422 Unprocessable Entity", "/v1/assist contract"]),
        (418, ["HTTP 418", "not retried"]),
    ],
)
def test_each_status_says_what_to_check(status: int, parts: list[str]) -> None:
    response = httpx.Response(status, content=b'{"error":"x"}')
    message = describe_rejection(response, response.content, config(), SECRET)
    assert message.startswith(
        f"POST https://agent.example/v1/assist answered HTTP {status}"
    )
    for part in parts:
        assert part in message


def test_a_redirect_names_its_location() -> None:
    response = httpx.Response(
        301, headers={"location": "https://new.example/v1/assist"}
    )
    message = describe_rejection(response, b"", config(), SECRET)
    assert "to https://new.example/v1/assist: redirects are not followed" in message

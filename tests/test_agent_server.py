"""The reference Agent API: contract, token check, scripts and what it records."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.agent_server import (
    ScriptedResponse,
    serve_in_background,
    serve_main,
)
from flows.assist import AssistAnswer, AssistRequest
from tests.test_agent_api import TOKEN, fixed_analyse, sample_request

REPO = Path(__file__).resolve().parent.parent


def post(url: str, body: object, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.post(f"{url}/v1/assist", json=body, headers=headers, timeout=5)


def test_openapi_document_comes_from_the_assist_models() -> None:
    with serve_in_background(token=TOKEN) as server:
        document = httpx.get(f"{server.url}/openapi.json").json()

    operation = document["paths"]["/v1/assist"]["post"]
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    answer_schema = operation["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert body_schema == {"$ref": "#/components/schemas/AssistRequest"}
    assert answer_schema == {"$ref": "#/components/schemas/AssistAnswer"}
    assert operation["security"] == [{"HTTPBearer": []}]
    assert {"401", "409", "422"} <= set(operation["responses"])
    assert [(p["name"], p["in"]) for p in operation["parameters"]] == [
        ("idempotency-key", "header")
    ]
    schemas = document["components"]["schemas"]
    assert schemas["AssistAnswer"]["required"] == ["summary", "error_count"]
    assert set(schemas["AssistRequest"]["required"]) == set(
        sample_request().model_dump()
    )
    tool = schemas["Action"]["properties"]["tool"]
    assert tool["enum"] == [
        "open_pulse_detail",
        "queue_refresh",
        "site_inject",
        "auto_fix",
        "open_incident",
    ]


def test_the_built_in_analyser_answers_by_default() -> None:
    request = sample_request()
    with serve_in_background(token=TOKEN) as server:
        response = post(server.url, request.model_dump(mode="json"))

    assert response.status_code == 200
    answer = AssistAnswer.model_validate_json(response.content)
    assert answer.error_count == 1
    assert {action.tool for action in answer.actions} <= {
        spec.name for spec in request.tools
    }


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-123", "Bearer", f"Basic {TOKEN}", f"bearer {TOKEN}x"],
)
def test_a_missing_or_wrong_token_gets_401_before_the_body_is_read(
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        response = httpx.post(
            f"{server.url}/v1/assist", content=b"not even json", headers=headers
        )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    (received,) = server.received
    assert received.token_matched is False
    assert received.body == b"not even json"
    assert received.headers.get("authorization") == (
        "[redacted]" if authorization else None
    )


def test_the_token_is_checked_case_insensitively_on_the_scheme_only() -> None:
    request = sample_request().model_dump(mode="json")
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        response = httpx.post(
            f"{server.url}/v1/assist",
            json=request,
            headers={"Authorization": f"bearer {TOKEN}"},
        )
    assert response.status_code == 200
    assert server.received[0].token_matched


def test_an_invalid_body_with_the_right_token_gets_422() -> None:
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        response = post(server.url, {"session_id": "s"})
    assert response.status_code == 422
    missing = {tuple(item["loc"]) for item in response.json()["detail"]}
    assert ("body", "tenant") in missing
    assert len(server.received) == 1


def test_scripted_statuses_headers_delays_and_bodies_in_order() -> None:
    request = sample_request().model_dump(mode="json")
    script = [
        ScriptedResponse(
            status=503, headers={"content-type": "text/html"}, body="<h1>503</h1>"
        ),
        ScriptedResponse(
            status=429,
            headers={"retry-after": "2", "date": "Tue, 10 Mar 2026 13:01:30 GMT"},
            body='{"error":"rate_limited"}',
            delay_s=0.3,
        ),
        ScriptedResponse(status=200),
    ]
    with serve_in_background(
        token=TOKEN, script=script, analyse=fixed_analyse
    ) as server:
        first = post(server.url, request)
        started = time.monotonic()
        second = post(server.url, request)
        delayed = time.monotonic() - started
        third = post(server.url, request)
        after_script = post(server.url, request)

    assert (first.status_code, first.text) == (503, "<h1>503</h1>")
    assert first.headers["content-type"] == "text/html"
    assert second.status_code == 429
    assert second.headers["retry-after"] == "2"
    assert second.headers["date"] == "Tue, 10 Mar 2026 13:01:30 GMT"
    assert delayed >= 0.3
    # A 2xx without a scripted body carries the analyser's answer.
    assert third.json()["summary"] == f"analysed {request['session_id']}"
    assert after_script.status_code == 200
    assert len(server.received) == 4


def test_repeat_last_keeps_answering_the_last_response() -> None:
    with serve_in_background(
        token=TOKEN, script=[ScriptedResponse(status=503)], repeat_last=True
    ) as server:
        statuses = [
            post(server.url, sample_request().model_dump(mode="json")).status_code
            for _ in range(3)
        ]
    assert statuses == [503, 503, 503]


def test_the_script_can_be_replaced_while_running() -> None:
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        server.script([{"status": 409, "body": '{"error":"conflict"}'}])
        response = post(server.url, sample_request().model_dump(mode="json"))
    assert (response.status_code, response.json()) == (409, {"error": "conflict"})


def test_received_requests_keep_headers_and_body_but_not_the_token() -> None:
    request = sample_request().model_dump(mode="json")
    with serve_in_background(token=TOKEN, analyse=fixed_analyse) as server:
        httpx.post(
            f"{server.url}/v1/assist",
            json=request,
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "assist-1"},
        )
    (received,) = server.received
    assert received.headers["idempotency-key"] == "assist-1"
    assert received.json() == request
    assert TOKEN not in repr(received)


def test_stopping_cuts_a_long_scripted_delay_short() -> None:
    started = time.monotonic()
    with (
        serve_in_background(
            token=TOKEN, script=[ScriptedResponse(status=200, delay_s=200)]
        ) as server,
        pytest.raises(httpx.ReadTimeout),
    ):
        httpx.post(
            f"{server.url}/v1/assist",
            json=sample_request().model_dump(mode="json"),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=httpx.Timeout(5, read=0.3),
        )
    assert time.monotonic() - started < 5


def test_serve_main_needs_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGENT_TEST_TOKEN", raising=False)
    assert serve_main(["--token-env", "AGENT_TEST_TOKEN"]) == 2
    assert "AGENT_TEST_TOKEN is not set" in capsys.readouterr().err


def test_serve_main_reports_a_bad_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("AGENT_TEST_TOKEN", TOKEN)
    code = serve_main(
        ["--token-env", "AGENT_TEST_TOKEN", "--script", str(tmp_path / "missing.json")]
    )
    assert code == 2
    assert "missing.json" in capsys.readouterr().err


def test_serve_main_on_a_taken_port_fails_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENT_TEST_TOKEN", TOKEN)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        code = serve_main(["--token-env", "AGENT_TEST_TOKEN", "--port", str(port)])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err == (
        f"completions-agent serve-agent: port {port} on 127.0.0.1 is already in "
        "use; choose another with --port\n"
    )


def test_the_command_line_exits_1_on_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "flows.cli", "serve-agent", "--port", str(port)],
            cwd=REPO,
            env={**os.environ, "AGENTAPI_TOKEN": TOKEN, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode == 1
    assert "Serving" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"completions-agent serve-agent: port {port} on 127.0.0.1 is already in "
        "use; choose another with --port"
    ]


def test_serve_main_names_an_address_it_cannot_listen_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGENT_TEST_TOKEN", TOKEN)
    # TEST-NET-1 (RFC 5737) is assigned to no interface of this machine.
    code = serve_main(["--token-env", "AGENT_TEST_TOKEN", "--host", "192.0.2.1"])

    assert code == 1
    assert capsys.readouterr().err == (
        "completions-agent serve-agent: cannot listen on 192.0.2.1 port 8765 "
        "(Cannot assign requested address); choose another --host or --port\n"
    )


def test_serve_main_serves_over_http_in_its_own_process(cases_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import sys; from flows.agent_server import serve_main; "
        "sys.exit(serve_main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--port",
            str(port),
            "--script",
            str(cases_dir / "20-agent-api-retry-sequences.json"),
            "--scenario",
            "client-error",
        ],
        cwd=REPO,
        env={**os.environ, "AGENTAPI_TOKEN": TOKEN, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith(
            f"Serving the reference Agent API on http://127.0.0.1:{port}"
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                response = post(url, sample_request().model_dump(mode="json"))
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert response.status_code == 400
        assert response.json() == {"error": "payload.lines must not be empty"}
        assert post(url, {}, token="wrong").status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_same_key_and_body_get_the_first_answer_again() -> None:
    calls: list[str] = []

    def counting(request: AssistRequest) -> AssistAnswer:
        calls.append(request.session_id)
        return AssistAnswer(summary=f"answer {len(calls)}", error_count=0)

    body = sample_request().model_dump(mode="json")
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "assist-abc"}
    with serve_in_background(token=TOKEN, analyse=counting) as server:
        first = httpx.post(f"{server.url}/v1/assist", json=body, headers=headers)
        again = httpx.post(f"{server.url}/v1/assist", json=body, headers=headers)
        other = dict(body, session_id="another-session")
        conflict = httpx.post(f"{server.url}/v1/assist", json=other, headers=headers)
        new_key = httpx.post(
            f"{server.url}/v1/assist",
            json=other,
            headers={**headers, "Idempotency-Key": "assist-def"},
        )

    assert first.json()["summary"] == "answer 1"
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert conflict.status_code == 409
    assert new_key.json()["summary"] == "answer 2"
    assert len(calls) == 2

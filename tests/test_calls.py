"""Parsing matched lines into calls, and redacting their query strings."""

from __future__ import annotations

import pytest

from flows.calls import ParsedCall, is_retry_line, parse_call, redact_url, redact_urls
from flows.logtext import shown_text

URL = "https://api.openai.com/v1/chat/completions"


@pytest.mark.parametrize(
    ("line", "version", "status", "reason"),
    [
        (
            f'INFO httpx HTTP Request: POST {URL} "HTTP/1.1 200 OK"',
            "HTTP/1.1",
            200,
            "OK",
        ),
        (
            f'- httpx2 - INFO - HTTP Request: POST {URL} "HTTP/2 200 OK"',
            "HTTP/2",
            200,
            "OK",
        ),
        (f'HTTP Request: POST {URL} "HTTP/1.1 529 "', "HTTP/1.1", 529, ""),
        (
            f'my.logger: HTTP Request: POST {URL} "HTTP/1.1 429 Too Many Requests"',
            "HTTP/1.1",
            429,
            "Too Many Requests",
        ),
    ],
)
def test_httpx_lines_with_any_logger_reason_and_version(
    line: str, version: str, status: int, reason: str
) -> None:
    call = parse_call(line)

    assert call == ParsedCall(
        "POST",
        "https",
        "api.openai.com",
        "/v1/chat/completions",
        version,
        status,
        reason,
    )


def test_a_latency_after_the_httpx_status_is_kept() -> None:
    call = parse_call(f'HTTP Request: POST {URL} "HTTP/1.1 200 OK" elapsed=0.52s')

    assert call is not None and call.latency_ms == 520.0


def test_openai_node_sdk_lines() -> None:
    info = parse_call(
        f'[log_8f2a1c, x-request-id: "req_1"] POST {URL} failed with status 429'
        " in 212ms - retrying, 2 attempts remaining"
    )
    debug = parse_call(
        f"OpenAI:DEBUG:response (error; (error; no more retries left)) 500 {URL} {{}}"
    )

    assert info == ParsedCall(
        "POST",
        "https",
        "api.openai.com",
        "/v1/chat/completions",
        None,
        429,
        None,
        212.0,
    )
    assert debug is not None
    assert (debug.method, debug.status, debug.path) == (
        None,
        500,
        "/v1/chat/completions",
    )


def test_envoy_access_line() -> None:
    line = (
        '[2026-03-10T04:00:01.123Z] "POST /v1/chat/completions HTTP/1.1" 503 UF '
        'upstream_reset_before_response_started - "-" 2211 91 30001 - "-" '
        '"OpenAI/Python 1.66.3" "3c1e8f0a" "api.openai.com" "203.0.113.10:443"'
    )

    call = parse_call(line)

    assert call == ParsedCall(
        "POST",
        None,
        "api.openai.com",
        "/v1/chat/completions",
        "HTTP/1.1",
        503,
        None,
        30001.0,
    )


def test_nginx_access_line_with_request_time() -> None:
    line = (
        "10.42.0.7 - - [10/Mar/2026:04:00:01 +0000] "
        '"POST /v1/chat/completions HTTP/1.1" 200 812 "-" "OpenAI/Python 1.66.3"'
        " rt=1.250"
    )

    call = parse_call(line)

    assert call is not None
    assert (call.method, call.host, call.status, call.latency_ms) == (
        "POST",
        None,
        200,
        1250.0,
    )


def test_json_logger_with_method_and_url_in_separate_fields() -> None:
    text, fields = shown_text(
        '{"msg": "llm call", "http": {"method": "post", "url": "https://api.openai.com'
        '/v1/chat/completions?api-key=abc123"}, "status_code": 502, "duration_ms": 88}'
    )

    call = parse_call(text, fields)

    assert call == ParsedCall(
        "POST",
        "https",
        "api.openai.com",
        "/v1/chat/completions?api-key=[redacted]",
        None,
        502,
        None,
        88.0,
    )


def test_json_message_in_httpx_form_is_parsed_from_the_message() -> None:
    text, fields = shown_text(
        '{"msg":"HTTP Request: POST https:\\/\\/api.openai.com'
        '\\/v1\\/chat\\/completions \\u0022HTTP\\/1.1 200 OK\\u0022"}'
    )

    call = parse_call(text, fields)

    assert call is not None and (call.host, call.status) == ("api.openai.com", 200)


@pytest.mark.parametrize(
    "line",
    [
        "openai._base_client - Retrying request to /chat/completions in 0.41 seconds",
        "openai._base_client - INFO - Retrying request in 0.823104 seconds",
        "[log_1] response error (retrying, 2 attempts remaining)",
    ],
)
def test_sdk_retry_lines_are_not_calls(line: str) -> None:
    assert is_retry_line(line)
    assert parse_call(line) is None


def test_unknown_formats_stay_raw() -> None:
    assert (
        parse_call("user asked: please POST https://example.org and completions")
        is None
    )
    assert parse_call('{"msg": "no call here"}', {"msg": "no call here"}) is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://h/v1/chat/completions?api-version=2024-06-01&api-key=s3cr3t",
            "https://h/v1/chat/completions?api-version=2024-06-01&api-key=[redacted]",
        ),
        (
            "https://user:pw@h/p?sig=abc&limit=20",
            "https://h/p?sig=[redacted]&limit=20",
        ),
        (
            "https://h/p?q=sk-abcdefghijklmnop",
            "https://h/p?q=[redacted]",
        ),
        ("/v1/completions", "/v1/completions"),
    ],
)
def test_secret_looking_query_values_are_redacted(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_urls_inside_a_line_are_redacted() -> None:
    line = f'HTTP Request: POST {URL}?key=AIzaSyA "HTTP/1.1 200 OK"'

    assert (
        redact_urls(line)
        == f'HTTP Request: POST {URL}?key=[redacted] "HTTP/1.1 200 OK"'
    )
    call = parse_call(line)
    assert call is not None and call.path == "/v1/chat/completions?key=[redacted]"

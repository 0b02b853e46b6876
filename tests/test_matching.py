"""The filter step: rules, the window, coverage and the filled-in FilterResult."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.matching import scan_logs
from flows.records import LogFile

START = datetime(2026, 3, 9, 13, tzinfo=UTC)
END = datetime(2026, 3, 10, 13, tzinfo=UTC)
URL = "https://api.openai.com/v1/chat/completions"
NGINX = "10.0.0.1 - - [10/Mar/2026:04:00:01 +0000]"


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def httpx_line(moment: datetime, status: str = "200 OK") -> str:
    return f'{stamp(moment)} INFO httpx HTTP Request: POST {URL} "HTTP/1.1 {status}"\n'


def test_colours_and_escapes_around_words_do_not_hide_a_match(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        "\x1b[1mPOST\x1b[0m \x1b[4mhttps\x1b[0m://h/v1/chat/\x1b[35mcompletions\n"
        '{"msg": "POST https:\\/\\/h\\/v1\\/chat\\/completions"}\n'
    )

    result = scan_logs([LogFile(path=path)], include=["POST https://h/", "completions"])

    assert result.matches == 2
    assert [(call.line, call.repeat) for call in result.selected] == [
        ("POST https://h/v1/chat/completions", 2)
    ]


def test_window_is_half_open_and_uses_each_lines_own_time(tmp_path: Path) -> None:
    path = tmp_path / "pod.log"
    path.write_text(
        httpx_line(START - timedelta(seconds=1), "500 Internal Server Error")
        + httpx_line(START)
        + httpx_line(END - timedelta(microseconds=1), "429 Too Many Requests")
        + httpx_line(END, "503 Service Unavailable")
    )

    result = scan_logs(
        [LogFile(path=path, pod="web-1", container="app", format="timestamps")],
        start=START,
        end=END,
        restarts={"web-1/app": 2},
    )

    assert (result.lines_read, result.lines_in_window, result.matches) == (4, 2, 2)
    assert result.statistics.by_status == {"200": 1, "429": 1}
    assert result.first_timestamp == START - timedelta(seconds=1)
    assert result.last_timestamp == END
    (coverage,) = result.coverage
    assert (coverage.pod, coverage.container, coverage.restarts) == ("web-1", "app", 2)
    assert coverage.complete
    assert result.warnings == []


def test_a_log_starting_late_is_incomplete_and_says_from_when(tmp_path: Path) -> None:
    late, on_time = tmp_path / "late.log", tmp_path / "on-time.log"
    late.write_text(httpx_line(START + timedelta(hours=6)))
    on_time.write_text(httpx_line(START + timedelta(minutes=4)))

    result = scan_logs(
        [
            LogFile(path=late, pod="web-2", container="app"),
            LogFile(path=on_time, pod="web-1", container="app"),
        ],
        start=START,
        end=END,
    )

    assert [(c.pod, c.complete) for c in result.coverage] == [
        ("web-1", True),
        ("web-2", False),
    ]
    assert len(result.warnings) == 1
    assert "web-2/app" in result.warnings[0]
    assert "2026-03-09T19:00:00+00:00" in result.warnings[0]


def test_an_empty_log_still_has_a_coverage_record(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")

    result = scan_logs([LogFile(path=path, pod="web-1", container="app")], start=START)

    assert result.lines_read == 0
    assert [(c.pod, c.lines_read, c.complete) for c in result.coverage] == [
        ("web-1", 0, False)
    ]


def test_prefix_with_timestamps_tags_each_line(tmp_path: Path) -> None:
    path = tmp_path / "all.log"
    path.write_text(
        f"[pod/web-1/app] {httpx_line(START, '503 Service Unavailable')}"
        f"[pod/web-2/app] {httpx_line(START + timedelta(hours=1))}"
        f"[pod/web-1/app] {stamp(START + timedelta(hours=2))} INFO idle\n"
    )

    result = scan_logs([LogFile(path=path)], top_n=1)

    assert result.statistics.by_pod == {"web-1": 1, "web-2": 1}
    assert [(c.pod, c.lines_read, c.latest) for c in result.coverage] == [
        ("web-1", 2, START + timedelta(hours=2)),
        ("web-2", 1, START + timedelta(hours=1)),
    ]
    assert [(c.pod, c.status) for c in result.selected] == [("web-1", 503)]


@pytest.mark.parametrize(
    "line",
    [
        f"[log_1] POST {URL} failed with status 429 in 200ms - retrying",
        f"OpenAI:DEBUG:response 200 {URL} {{}}",
        f'{NGINX} "POST /v1/chat/completions HTTP/1.1" 200 5',
        '{"method": "POST", "url": "https://h/v1/completions", "status": 200}',
        'HTTP Request: POST http://vllm:8000/v1/chat/completions "HTTP/1.1 200 OK"',
    ],
)
def test_the_extended_rule_recognises_other_formats(tmp_path: Path, line: str) -> None:
    path = tmp_path / "app.log"
    path.write_text(line + "\n")

    extended = scan_logs([LogFile(path=path)], rule="extended")

    assert extended.matches == 1
    assert extended.selected[0].status in (200, 429)


@pytest.mark.parametrize(
    "line",
    [
        f'INFO HTTP Request: GET {URL}?limit=20 "HTTP/1.1 200 OK"',
        "Retrying request to /chat/completions in 0.4 seconds",
        "user asked: please POST https://example.org and explain completions",
        f'{NGINX} "POST /v1/embeddings HTTP/1.1" 200 5',
    ],
)
def test_the_extended_rule_leaves_out_what_is_not_a_completions_post(
    tmp_path: Path, line: str
) -> None:
    path = tmp_path / "app.log"
    path.write_text(line + "\n")

    assert scan_logs([LogFile(path=path)], rule="extended").matches == 0


def test_custom_include_patterns_are_all_required(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(
        httpx_line(START).replace("httpx", "billing.llm")
        + httpx_line(START + timedelta(seconds=1))
    )

    result = scan_logs([LogFile(path=path)], include=["billing.llm", "completions"])

    assert result.include == ["billing.llm", "completions"]
    assert result.matches == 1
    assert "billing.llm" in result.selected[0].line


def test_the_same_container_in_two_files_is_counted_once(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(httpx_line(START))
    second.write_text(httpx_line(START + timedelta(hours=1)))

    result = scan_logs(
        [
            LogFile(path=first, pod="web-1", container="app"),
            LogFile(path=second, pod="web-1", container="app"),
        ]
    )

    (coverage,) = result.coverage
    assert (coverage.lines_read, coverage.earliest, coverage.latest) == (
        2,
        START,
        START + timedelta(hours=1),
    )
    assert result.selected[0].repeat == 2

"""The filter step: rules, the window, coverage and the filled-in FilterResult."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.errors import ConfigurationError
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


# --- results that must not look healthy ---------------------------------------


def random_bytes(tmp_path: Path) -> Path:
    """100 kB of random bytes from a fixed seed: 424 newlines, no final one."""
    path = tmp_path / "noise.bin"
    path.write_bytes(random.Random(20261203).randbytes(100_000))
    return path


def test_random_bytes_say_that_the_span_of_time_is_unknown(tmp_path: Path) -> None:
    result = scan_logs([LogFile(path=random_bytes(tmp_path))])

    assert (result.lines_read, result.matches) == (425, 0)
    assert result.first_timestamp is None
    assert result.warnings == [
        "none of the 425 lines read carries a timestamp: the span of time they "
        "cover is unknown"
    ]


def test_random_bytes_with_a_window_say_it_could_not_be_applied(
    tmp_path: Path,
) -> None:
    result = scan_logs([LogFile(path=random_bytes(tmp_path))], start=START, end=END)

    assert (result.lines_read, result.lines_in_window) == (425, 425)
    assert [c.complete for c in result.coverage] == [False]
    assert result.warnings == [
        "none of the 425 lines read carries a timestamp, so the window from "
        "2026-03-09T13:00:00+00:00 to 2026-03-10T13:00:00+00:00 could not be "
        "applied: every line was kept"
    ]


def test_an_empty_file_says_no_line_was_read(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")

    result = scan_logs([LogFile(path=path)])

    assert result.lines_read == 0
    assert [c.complete for c in result.coverage] == [False]
    assert result.warnings == ["no log line was read: the file is empty or not a log"]


def test_two_empty_files_say_so_once(tmp_path: Path) -> None:
    paths = [tmp_path / "a.log", tmp_path / "b.log"]
    for path in paths:
        path.write_bytes(b"")

    result = scan_logs([LogFile(path=path) for path in paths], start=START)

    assert result.warnings == [
        "no log line was read: the 2 files are empty or not logs"
    ]


def test_since_after_the_logs_names_the_period_they_cover(tmp_path: Path) -> None:
    path = tmp_path / "pod.log"
    path.write_text(httpx_line(START) + httpx_line(START + timedelta(hours=3)))

    result = scan_logs([LogFile(path=path)], start=END)

    assert (result.lines_read, result.lines_in_window, result.matches) == (2, 0, 0)
    assert [c.complete for c in result.coverage] == [False]
    assert result.warnings == [
        "no line falls inside the window from 2026-03-10T13:00:00+00:00 on: the "
        "timestamps read run from 2026-03-09T13:00:00+00:00 to "
        "2026-03-09T16:00:00+00:00, so the logs cover another period"
    ]


def test_until_before_the_logs_names_the_period_they_cover(tmp_path: Path) -> None:
    path = tmp_path / "pod.log"
    path.write_text(httpx_line(END))

    result = scan_logs([LogFile(path=path)], end=START)

    assert [c.complete for c in result.coverage] == [False]
    assert result.warnings == [
        "no line falls inside the window before 2026-03-09T13:00:00+00:00: the "
        "timestamps read run from 2026-03-10T13:00:00+00:00 to "
        "2026-03-10T13:00:00+00:00, so the logs cover another period"
    ]


def test_a_container_without_timestamps_cannot_claim_the_window_start(
    tmp_path: Path,
) -> None:
    timed, untimed = tmp_path / "timed.log", tmp_path / "untimed.log"
    timed.write_text(httpx_line(START))
    untimed.write_text(f'INFO POST {URL} "HTTP/1.1 200 OK"\nINFO idle\n')

    result = scan_logs(
        [
            LogFile(path=timed, pod="web-1", container="app"),
            LogFile(path=untimed, pod="web-2", container="app"),
        ],
        start=START,
    )

    assert [(c.pod, c.complete) for c in result.coverage] == [
        ("web-1", True),
        ("web-2", False),
    ]
    assert result.warnings == [
        "coverage incomplete for web-2/app: its log carries no timestamp, so it "
        "cannot show that it reaches back to the window start "
        "2026-03-09T13:00:00+00:00",
        "2 lines without any timestamp were kept although a window was given",
    ]


def test_a_container_whose_log_ends_before_the_window_is_incomplete(
    tmp_path: Path,
) -> None:
    ended, running = tmp_path / "ended.log", tmp_path / "running.log"
    ended.write_text(httpx_line(START - timedelta(hours=2)))
    running.write_text(httpx_line(START))

    result = scan_logs(
        [
            LogFile(path=ended, pod="web-1", container="app"),
            LogFile(path=running, pod="web-2", container="app"),
        ],
        start=START,
        end=END,
    )

    assert [(c.pod, c.complete) for c in result.coverage] == [
        ("web-1", False),
        ("web-2", True),
    ]
    assert result.warnings == [
        "coverage incomplete for web-1/app: its log ends at "
        "2026-03-09T11:00:00+00:00, before the window start "
        "2026-03-09T13:00:00+00:00"
    ]


@pytest.mark.parametrize("end", [START, START - timedelta(seconds=1)])
def test_a_window_that_does_not_end_after_it_starts_is_refused(
    tmp_path: Path, end: datetime
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        scan_logs([LogFile(path=tmp_path / "never-read.log")], start=START, end=end)

    assert str(caught.value) == (
        "--since must be before --until: the window start 2026-03-09T13:00:00+00:00 "
        f"is not before its end {end.isoformat()}, so no line could fall inside it"
    )


@pytest.mark.parametrize("pattern", ["", "  "])
def test_an_empty_include_pattern_is_refused(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        scan_logs([LogFile(path=tmp_path / "never-read.log")], include=[pattern])

    assert str(caught.value) == (
        f"--include {pattern!r} is empty: it would match every line; give text "
        "every call line holds, e.g. --include completions"
    )


def test_the_literal_rule_without_patterns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text(httpx_line(START))

    with pytest.raises(ConfigurationError, match="no --include pattern"):
        scan_logs([LogFile(path=path)], include=[])
    # The extended rule does not use the patterns.
    assert scan_logs([LogFile(path=path)], include=[], rule="extended").matches == 1

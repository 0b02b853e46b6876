"""One line's text: ANSI colours, JSON messages, truncation and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.logtext import (
    app_timestamp,
    decode,
    parse_rfc3339,
    shown_text,
    strip_ansi,
    truncate,
)


def test_text_cleaning_helpers() -> None:
    assert strip_ansi(b"\x1b[1;33mPOST\x1b[0m https") == b"POST https"
    assert truncate("short") == "short"
    message, fields = shown_text('{"msg": "a \\u0022quoted\\u0022 \\/path", "n": 1}')
    assert message == 'a "quoted" /path'
    assert fields == {"msg": 'a "quoted" /path', "n": 1}
    assert shown_text("{not json}") == ("{not json}", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "2026-03-10 08:00:00,250 INFO x",
            datetime(2026, 3, 10, 8, 0, 0, 250000, tzinfo=UTC),
        ),
        (
            '[2026-03-10T04:00:01.123Z] "POST',
            datetime(2026, 3, 10, 4, 0, 1, 123000, tzinfo=UTC),
        ),
        ("2026-03-10T10:00:00+02:00 x", datetime(2026, 3, 10, 8, tzinfo=UTC)),
        (
            '{"ts": 1773129600.5, "msg": "x"}',
            datetime(2026, 3, 10, 8, 0, 0, 500000, tzinfo=UTC),
        ),
        (
            '10.0.0.1 - - [10/Mar/2026:08:00:00 +0000] "POST',
            datetime(2026, 3, 10, 8, tzinfo=UTC),
        ),
        ("no time here", None),
    ],
)
def test_application_timestamps(text: str, expected: datetime | None) -> None:
    assert app_timestamp(text) == expected


def test_long_text_keeps_head_and_tail_around_the_marker() -> None:
    text = "head " + "x" * 5000 + " tail"

    shown = truncate(text)

    assert shown.startswith("head ") and shown.endswith(" tail")
    assert "…[3110 characters truncated]…" in shown


def test_decoding_replaces_what_is_not_utf8() -> None:
    assert decode(b"M\xfcnchen \xe2\x96 ok\r") == "M\ufffdnchen \ufffd ok"


def test_runtime_timestamps_keep_microseconds_and_zone() -> None:
    assert parse_rfc3339(b"2026-03-09T13:00:01.123456789Z") == datetime(
        2026, 3, 9, 13, 0, 1, 123456, tzinfo=UTC
    )
    assert parse_rfc3339(b"not a time") is None

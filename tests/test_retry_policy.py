"""Retry-After parsing and the exponential backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.retry_policy import RETRIED_STATUSES, backoff_seconds, retry_after_seconds


@pytest.mark.parametrize(
    ("value", "date", "expected"),
    [
        ("7", None, 7.0),
        (" 0 ", None, 0.0),
        ("1.5", None, 1.5),
        ("Tue, 10 Mar 2026 13:02:00 GMT", "Tue, 10 Mar 2026 13:01:30 GMT", 30.0),
        ("Tue, 10 Mar 2026 13:01:00 GMT", "Tue, 10 Mar 2026 13:01:30 GMT", 0.0),
        ("soon", None, None),
        ("-5", None, None),
        ("nan", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_retry_after_values(
    value: str | None, date: str | None, expected: float | None
) -> None:
    assert retry_after_seconds(value, date=date) == expected


def test_retry_after_date_without_a_date_header_uses_now() -> None:
    now = datetime(2026, 3, 10, 13, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Tue, 10 Mar 2026 13:00:45 GMT", now=now) == 45.0


def test_the_retried_statuses_are_exactly_the_transient_ones() -> None:
    assert sorted(RETRIED_STATUSES) == [408, 425, 429, 500, 502, 503, 504]


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [(1, 0.0, 0.5), (1, 1.0, 1.0), (2, 0.5, 1.5), (3, 0.5, 3.0), (6, 1.0, 30.0)],
)
def test_backoff_doubles_up_to_the_maximum(
    attempt: int, jitter: float, expected: float
) -> None:
    wait = backoff_seconds(attempt, base=1.0, maximum=30.0, jitter=lambda: jitter)
    assert wait == expected

"""When to retry a failed Agent API call, and how long to wait before it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

#: Statuses a later attempt may not meet; any other non-2xx fails at once.
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class Clock(Protocol):
    """Where the post step reads the time and waits; tests pass a fake one."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The monotonic clock and real sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def retry_after_seconds(
    value: str | None, *, date: str | None = None, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a `Retry-After` header, or None if absent or unreadable.

    An HTTP date is measured from the response's `Date` header when there is one
    (so a skewed local clock does not matter), else from `now`.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # NaN and negative numbers are as unreadable as garbage.
        return seconds if seconds >= 0 and seconds == seconds else None
    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(date) if date else None
    reference = reference or now or datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def backoff_seconds(
    attempt: int, *, base: float, maximum: float, jitter: Callable[[], float]
) -> float:
    """Exponential backoff after `attempt` failed, with jitter over its upper half.

    `jitter()` returns a number in [0, 1]; waits spread over [d/2, d] for the
    capped delay d = min(maximum, base * 2^(attempt - 1)), so retries of many
    clients do not arrive together.
    """
    delay = min(maximum, base * 2 ** (attempt - 1))
    return delay * (0.5 + 0.5 * jitter())

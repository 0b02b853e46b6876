"""Counting every matched call, and choosing the few worth showing.

Both structures have a bounded size whatever the input: `CallCounter` keeps
counters (each table capped at `MAX_KEYS` entries, the rest folded into
`"(other)"`), and `TopCalls` keeps N records plus one small integer per distinct
call.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from flows.records import CallRecord, CallStatistics

MAX_KEYS = 1000
MAX_GROUPS = 100_000
OTHER = "(other)"
UNKNOWN = "unknown"

_LEADING_TIME = re.compile(r"^\W*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}[.,\d]*\S*\s*")


class CallCounter:
    """Totals over all matched calls: by status, class, host, path, pod and hour."""

    def __init__(self) -> None:
        self.total = 0
        self.errors = 0
        self.tables: dict[str, Counter[str]] = {
            name: Counter()
            for name in ("status", "status_class", "host", "path", "pod", "hour")
        }

    def add(self, call: CallRecord) -> None:
        """Count one matched call."""
        self.total += 1
        if call.status is not None and call.status >= 400:
            self.errors += 1
        status = str(call.status) if call.status is not None else UNKNOWN
        klass = f"{status[0]}xx" if call.status is not None else UNKNOWN
        path = call.path.split("?", 1)[0] if call.path else UNKNOWN
        hour = call.timestamp.strftime("%Y-%m-%dT%H:00Z") if call.timestamp else UNKNOWN
        for name, key in (
            ("status", status),
            ("status_class", klass),
            ("host", call.host or UNKNOWN),
            ("path", path),
            ("pod", call.pod or UNKNOWN),
            ("hour", hour),
        ):
            table = self.tables[name]
            if key not in table and len(table) >= MAX_KEYS:
                key = OTHER
            table[key] += 1

    def statistics(self) -> CallStatistics:
        """The counts as the shared statistics record (keys sorted for stable output).

        `error_rate` is the share of 4xx and 5xx among all matched calls.
        """
        tables = {
            name: dict(sorted(table.items())) for name, table in self.tables.items()
        }
        return CallStatistics(
            total=self.total,
            by_status=tables["status"],
            by_status_class=tables["status_class"],
            by_host=tables["host"],
            by_path=tables["path"],
            by_pod=tables["pod"],
            by_hour=tables["hour"],
            errors=self.errors,
            error_rate=self.errors / self.total if self.total else 0.0,
        )


def severity(status: int | None) -> int:
    """0 for 5xx and 429, 1 for other 4xx, 2 for everything else (unknown too)."""
    if status is not None and (status >= 500 or status == 429):
        return 0
    if status is not None and 400 <= status < 500:
        return 1
    return 2


def identity(call: CallRecord) -> tuple[object, ...]:
    """What makes two calls the same: everything but the time.

    A parsed call is identified by where it ran and what it asked and got (the
    status and reason included, so a 429 and the 200 of its retry stay apart); a
    line of unknown format by its text without a leading timestamp.
    """
    if call.method is None and call.status is None:
        return (call.pod, call.container, _LEADING_TIME.sub("", call.line))
    return (
        call.pod,
        call.container,
        call.method,
        call.scheme,
        call.host,
        call.path,
        call.http_version,
        call.status,
        call.reason,
    )


def rank(call: CallRecord) -> tuple[object, ...]:
    """Sort key of a call: severity, then most recent first, then a stable tie-break."""
    moment = call.timestamp.timestamp() if call.timestamp else float("-inf")
    return (
        severity(call.status),
        -moment,
        call.pod or "",
        call.container or "",
        call.line,
    )


class TopCalls:
    """The top N calls, identical calls collapsed into one with a repeat count.

    Order: severity first (5xx and 429, then other 4xx, then the rest), then the
    most recent occurrence first; ties by pod, container and line text. Each
    collapsed call shows its most recent occurrence and counts all of them. The
    result does not depend on the order calls are added in.

    A group's rank only improves as later occurrences arrive, and the rank needed
    to enter the top N only rises, so a group left out once with its best
    occurrence can never belong to the top N: keeping N records is enough. Only
    the repeat counts need one integer per distinct call, up to `max_groups`
    (beyond that, new calls are shown with the occurrences seen while in the top).
    """

    def __init__(self, size: int, max_groups: int = MAX_GROUPS) -> None:
        self.size = size
        self.max_groups = max_groups
        self.overflowed = False
        self._counts: dict[int, int] = {}
        self._best: dict[int, tuple[tuple[object, ...], CallRecord]] = {}

    def add(self, call: CallRecord) -> None:
        """Offer one matched call."""
        key = hash(identity(call))
        if key in self._counts:
            self._counts[key] += 1
        elif len(self._counts) < self.max_groups:
            self._counts[key] = 1
        else:
            self.overflowed = True
        if self.size <= 0:
            return
        order = rank(call)
        held = self._best.get(key)
        if held is not None:
            if order < held[0]:
                self._best[key] = (order, call)
            return
        self._best[key] = (order, call)
        if len(self._best) > self.size:
            worst = max(self._best, key=lambda group: self._best[group][0])
            del self._best[worst]

    def selected(self) -> list[CallRecord]:
        """The chosen calls in rank order, each with its repeat count."""
        chosen = sorted(self._best.items(), key=lambda item: item[1][0])
        return [
            call.model_copy(update={"repeat": self._counts.get(key, 1)})
            for key, (_, call) in chosen
        ]


def latest(first: datetime | None, second: datetime | None) -> datetime | None:
    """The later of two optional times."""
    if first is None or second is None:
        return first or second
    return max(first, second)

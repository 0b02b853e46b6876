"""Counting every matched call, and choosing the few worth showing.

Both structures have a bounded size whatever the input: `CallCounter` keeps
counters (each table capped at `MAX_KEYS` entries, the rest folded into
`"(other)"`), and `TopCalls` keeps N records plus one small integer per distinct
call.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cmp_to_key

from flows.calls import ParsedCall
from flows.logfiles import hour_of
from flows.records import CallRecord, CallStatistics

MAX_KEYS = 1000
MAX_GROUPS = 100_000
OTHER = "(other)"
UNKNOWN = "unknown"

_LEADING_TIME = re.compile(r"^\W*\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}[.,\d]*\S*\s*")


class CallCounter:
    """Totals over all matched calls: by status, class, host, path, pod and hour.

    Calls are first counted by their combination of those five facts (one
    increment per call); the combinations are folded into the tables when there
    are more than `MAX_KEYS` of them, and at the end.
    """

    def __init__(self) -> None:
        self.total = 0
        self.errors = 0
        self._combined: Counter[tuple[int | None, str, str, str, str]] = Counter()
        self.tables: dict[str, Counter[str]] = {
            name: Counter()
            for name in ("status", "status_class", "host", "path", "pod", "hour")
        }

    def add(self, call: CallRecord) -> None:
        """Count one matched call."""
        hour = hour_of(call.timestamp) if call.timestamp else None
        self.count(call.status, call.host, call.path, call.pod, hour)

    def count(
        self,
        status: int | None,
        host: str | None,
        path: str | None,
        pod: str | None,
        hour: str | None,
        times: int = 1,
    ) -> None:
        """Count `times` matched calls from their facts (the fast form of `add`)."""
        self.total += times
        if status is not None and status >= 400:
            self.errors += times
        key = (
            status,
            host or UNKNOWN,
            path or UNKNOWN,
            pod or UNKNOWN,
            hour or UNKNOWN,
        )
        self._combined[key] += times
        if len(self._combined) > MAX_KEYS:
            self._fold()

    def _fold(self) -> None:
        for (status, host, path, pod, hour), count in self._combined.items():
            code = str(status) if status is not None else UNKNOWN
            klass = f"{code[0]}xx" if status is not None else UNKNOWN
            for name, key in (
                ("status", code),
                ("status_class", klass),
                ("host", host),
                ("path", path.split("?", 1)[0]),
                ("pod", pod),
                ("hour", hour),
            ):
                table = self.tables[name]
                if key not in table and len(table) >= MAX_KEYS:
                    key = OTHER
                table[key] += count
        self._combined.clear()

    def absorb(self, other: CallCounter) -> None:
        """Add the counts another process made over other lines."""
        other._fold()
        self._fold()
        self.total += other.total
        self.errors += other.errors
        for name, table in other.tables.items():
            mine = self.tables[name]
            for key, count in table.items():
                if key not in mine and len(mine) >= MAX_KEYS:
                    key = OTHER
                mine[key] += count

    def statistics(self) -> CallStatistics:
        """The counts as the shared statistics record (keys sorted for stable output).

        `error_rate` is the share of 4xx and 5xx among all matched calls.
        """
        self._fold()
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
        return raw_identity(call.pod, call.container, call.line)
    return (call.pod, call.container, *call_identity(call))


def call_identity(call: CallRecord | ParsedCall) -> tuple[object, ...]:
    """The parts of a parsed call that identify it (without pod and container)."""
    return (
        call.method,
        call.scheme,
        call.host,
        call.path,
        call.http_version,
        call.status,
        call.reason,
    )


def raw_identity(
    pod: str | None, container: str | None, line: str
) -> tuple[object, ...]:
    """The identity of a line of unknown format: its text without a leading time."""
    return (pod, container, _LEADING_TIME.sub("", line))


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
    result does not depend on the order calls are offered in.

    A group's rank only improves as later occurrences arrive, and the rank needed
    to enter the top N only rises, so a group left out once with its best
    occurrence can never belong to the top N: keeping N records is enough. Only
    the repeat counts need one integer per distinct call, up to `max_groups`
    (beyond that, a warning says repeat counts may be too low).
    """

    def __init__(self, size: int, max_groups: int = MAX_GROUPS) -> None:
        self.size = size
        self.max_groups = max_groups
        self.overflowed = False
        self._counts: dict[int, int] = {}
        self._best: dict[int, _Entry] = {}
        self._worst: _Entry | None = None

    def add(self, call: CallRecord) -> None:
        """Offer one matched call."""
        self.offer(
            identity(call), severity(call.status), lambda: call.timestamp, lambda: call
        )

    def offer(
        self,
        same: tuple[object, ...],
        level: int,
        moment: Callable[[], datetime | None],
        make_record: Callable[[], CallRecord],
        times: int = 1,
    ) -> None:
        """Offer a call by identity, severity and time; it is built only when needed.

        `times` identical calls are counted; the one offered is the latest of them.
        """
        key = hash(same)
        self._count(key, times)
        if self.size <= 0:
            return
        held = self._best.get(key)
        full = len(self._best) >= self.size
        if held is None and full and level > self._worst_entry().quick[0]:
            return  # less severe than everything kept: no need to know its time
        self._consider(key, _Entry((level, -_seconds(moment())), make_record))

    def export(self) -> TopExport:
        """What another process's `absorb` needs: counts and the kept records."""
        best = [(key, entry.quick, entry.record()) for key, entry in self._best.items()]
        return TopExport(dict(self._counts), self.overflowed, best)

    def absorb(self, other: TopExport) -> None:
        """Merge the top calls found by another process over other lines."""
        for key, times in other.counts.items():
            self._count(key, times)
        self.overflowed = self.overflowed or other.overflowed
        for key, quick, record in other.best:
            if self.size > 0:
                self._consider(key, _Entry(quick, _Kept(record)))

    def _count(self, key: int, times: int) -> None:
        if key in self._counts:
            self._counts[key] += times
        elif len(self._counts) < self.max_groups:
            self._counts[key] = times
        else:
            self.overflowed = True

    def _consider(self, key: int, entry: _Entry) -> None:
        held = self._best.get(key)
        if held is not None:
            if _compare(entry, held) < 0:
                self._best[key] = entry
                self._worst = None
            return
        if len(self._best) >= self.size:
            worst = self._worst_entry()
            if entry.quick > worst.quick or _compare(entry, worst) >= 0:
                return
            del self._best[next(k for k, v in self._best.items() if v is worst)]
        self._best[key] = entry
        self._worst = None

    def _worst_entry(self) -> _Entry:
        if self._worst is None:
            self._worst = max(self._best.values(), key=cmp_to_key(_compare))
        return self._worst

    def selected(self) -> list[CallRecord]:
        """The chosen calls in rank order, each with its repeat count."""
        order = cmp_to_key(_compare)
        chosen = sorted(self._best.items(), key=lambda item: order(item[1]))
        return [
            entry.record().model_copy(update={"repeat": self._counts.get(key, 1)})
            for key, entry in chosen
        ]


@dataclass(frozen=True)
class TopExport:
    """The picklable state of a `TopCalls`, handed from a worker process."""

    counts: dict[int, int]
    overflowed: bool
    best: list[tuple[int, tuple[int, float], CallRecord]]


class _Kept:
    """A record already built, in the shape of a record maker."""

    def __init__(self, record: CallRecord) -> None:
        self.record = record

    def __call__(self) -> CallRecord:
        return self.record


class _Entry:
    """A kept call: its quick rank (severity, time) and the record, built lazily."""

    __slots__ = ("_make", "_record", "quick")

    def __init__(
        self, quick: tuple[int, float], make: Callable[[], CallRecord]
    ) -> None:
        self.quick = quick
        self._make = make
        self._record: CallRecord | None = None

    def record(self) -> CallRecord:
        if self._record is None:
            self._record = self._make()
        return self._record


def _compare(first: _Entry, second: _Entry) -> int:
    if first.quick != second.quick:
        return -1 if first.quick < second.quick else 1
    one, other = rank(first.record()), rank(second.record())
    return (one > other) - (one < other)


def _seconds(moment: datetime | None) -> float:
    return moment.timestamp() if moment else float("-inf")

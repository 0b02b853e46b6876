"""The filter step: find the completions calls in log files, count them, rank them.

The rules are in `flows.rules`, the reading in `flows.logfiles` and
`flows.logscan`, the deciding and counting in `flows.collector`. A JSON-structured
line is matched and shown by its message (escapes decoded once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from flows.collector import CallCollector, to_record
from flows.logfiles import BLOCK_SIZE, Bounds, StreamCounts, StreamKey
from flows.logscan import LogScanner
from flows.parallel import PartJob, merge_counts, plan_parts, scan_parts
from flows.records import ContainerCoverage, FilterResult, LogFile
from flows.rules import DEFAULT_INCLUDE, Matcher, Rule, anchor_for, words_of
from flows.stats import TopCalls

__all__ = [
    "DEFAULT_INCLUDE",
    "Matcher",
    "Rule",
    "anchor_for",
    "scan_logs",
    "to_record",
    "words_of",
]

logger = logging.getLogger(__name__)

# A log that starts this long after the window start still covers the window: a
# container is often quiet for a few minutes, and `sinceSeconds` is whole seconds.
COVERAGE_TOLERANCE = timedelta(minutes=5)


def scan_logs(
    files: Iterable[LogFile],
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
    rule: Rule = "literal",
    top_n: int = 5,
    start: datetime | None = None,
    end: datetime | None = None,
    restarts: Mapping[str, int] | None = None,
    block_size: int = BLOCK_SIZE,
    workers: int = 1,
) -> FilterResult:
    """Read log files once, streaming, and find the completions calls in [start, end).

    Args:
        files: the logs to read (see `flows.logfiles` for the formats).
        include: patterns of the literal rule.
        rule: `literal` or `extended` (see `flows.rules`).
        top_n: how many calls to select (see `TopCalls` for the order).
        start: keep lines at or after this time (None: no lower bound).
        end: keep lines before this time (None: no upper bound).
        restarts: restart counts by `pod/container`, copied into the coverage.
        block_size: bytes read at a time; the result does not depend on it.
        workers: processes that may share one big file (see `flows.parallel`);
            the result does not depend on it. Forking is left to callers that
            know it is safe (a command line, not a process with busy threads).

    Returns:
        Counts, statistics over every matched call, the selected calls, and one
        coverage record per pod/container/instance. A line without a timestamp of
        its own takes that of the line before it; lines before the first
        timestamped line of a log are kept, and a warning counts them.
        A container's coverage is complete when its earliest line (over all its
        instances) is at most `COVERAGE_TOLERANCE` (5 minutes) after `start`;
        otherwise a warning says from when its log starts.

    Raises:
        LogFileError: if a file cannot be read.
    """
    matcher = Matcher(include, rule)
    anchor = anchor_for(include, rule)
    bounds = Bounds(_utc(start), _utc(end))
    collector = CallCollector(matcher, top_n)
    streams: dict[StreamKey, StreamCounts] = {}
    for log_file in files:
        parts = plan_parts(log_file, workers)
        if parts and len(parts) > 1:
            jobs = [
                PartJob(
                    log_file,
                    part,
                    anchor,
                    bounds,
                    tuple(include),
                    rule,
                    top_n,
                    block_size,
                )
                for part in parts
            ]
            found = scan_parts(jobs, collector)
        else:
            scanner = LogScanner(
                log_file,
                anchor=anchor,
                bounds=bounds,
                sink=collector,
                block_size=block_size,
            )
            found = scanner.run()
            logger.info("Read %s (%s)", log_file.path, scanner.layout.value)
        for key, counts in found.items():
            merge_counts(streams.setdefault(key, StreamCounts()), counts)

    coverage = _coverage(streams, bounds, restarts or {})
    return FilterResult(
        rule=rule,
        include=list(include),
        lines_read=sum(counts.lines_read for counts in streams.values()),
        lines_in_window=sum(counts.lines_in_window for counts in streams.values()),
        matches=collector.counter.total,
        selected=collector.top.selected(),
        statistics=collector.counter.statistics(),
        coverage=coverage,
        first_timestamp=min((c.earliest for c in coverage if c.earliest), default=None),
        last_timestamp=max((c.latest for c in coverage if c.latest), default=None),
        warnings=_warnings(streams, coverage, bounds, collector.top),
    )


def _coverage(
    streams: Mapping[StreamKey, StreamCounts],
    bounds: Bounds,
    restarts: Mapping[str, int],
) -> list[ContainerCoverage]:
    """One record per stream; complete when its container's log reaches the start."""
    first_by_container: dict[tuple[str | None, str | None], datetime | None] = {}
    for key, counts in streams.items():
        container = (key.pod, key.container)
        known = first_by_container.get(container)
        earliest = counts.earliest
        if known is not None and (earliest is None or known < earliest):
            earliest = known
        first_by_container[container] = earliest
    records = []
    for key in sorted(
        streams, key=lambda k: (k.pod or "", k.container or "", k.previous)
    ):
        counts = streams[key]
        earliest = first_by_container[(key.pod, key.container)]
        complete = bounds.start is None or (
            earliest is not None and earliest <= bounds.start + COVERAGE_TOLERANCE
        )
        records.append(
            ContainerCoverage(
                pod=key.pod,
                container=key.container,
                previous=key.previous,
                restarts=restarts.get(f"{key.pod}/{key.container}", 0),
                lines_read=counts.lines_read,
                lines_in_window=counts.lines_in_window,
                earliest=counts.earliest,
                latest=counts.latest,
                complete=complete,
            )
        )
    return records


def _warnings(
    streams: Mapping[StreamKey, StreamCounts],
    coverage: list[ContainerCoverage],
    bounds: Bounds,
    top: TopCalls,
) -> list[str]:
    warnings = []
    for record in coverage:
        if not record.complete:
            since = record.earliest.isoformat() if record.earliest else "nothing"
            instance = " (previous instance)" if record.previous else ""
            warnings.append(
                f"coverage incomplete for {record.pod}/{record.container}{instance}: "
                f"its log starts at {since}, after the window start "
                f"{bounds.start.isoformat() if bounds.start else ''}; calls before "
                "that are not in the analysis"
            )
    kept = sum(counts.kept_without_time for counts in streams.values())
    if kept:
        warnings.append(
            f"{kept} lines without any timestamp were kept although a window was given"
        )
    if top.overflowed:
        warnings.append(
            "more distinct calls than could be counted: repeat counts of the selected "
            "calls may be too low"
        )
    return warnings


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)

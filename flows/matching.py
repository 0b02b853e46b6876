"""The filter step: find the completions calls in log files, count them, rank them.

The rules are in `flows.rules`, the reading in `flows.logfiles` and
`flows.logscan`, the deciding and counting in `flows.collector`. A JSON-structured
line is matched and shown by its message (escapes decoded once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from flows.collector import CallCollector, to_record
from flows.coverage import container_coverage, container_spans, coverage_warnings
from flows.errors import ConfigurationError
from flows.logfiles import BLOCK_SIZE, Bounds, StreamCounts, StreamKey
from flows.logscan import LogScanner
from flows.parallel import PartJob, merge_counts, plan_parts, scan_parts
from flows.records import FilterResult, LogFile
from flows.rules import DEFAULT_INCLUDE, Matcher, Rule, anchor_for, words_of

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
        A container's coverage is complete when its log (over all its instances)
        has lines, reaches into the window, and starts at most
        `flows.coverage.COVERAGE_TOLERANCE` (5 minutes) after `start`; a log
        without any timestamp cannot be complete when `start` is given. Warnings
        say why a container is incomplete, and when no line was read, none
        carries a timestamp, or none falls inside the window (with the span
        seen).

    Raises:
        ConfigurationError: `start` is not before `end`, a pattern is empty, or
            the literal rule has no pattern (each would keep every line or none).
        LogFileError: if a file cannot be read.
    """
    bounds = Bounds(_utc(start), _utc(end))
    _check_filter(include, rule, bounds)
    matcher = Matcher(include, rule)
    anchor = anchor_for(include, rule)
    collector = CallCollector(matcher, top_n)
    streams: dict[StreamKey, StreamCounts] = {}
    file_count = 0
    for log_file in files:
        file_count += 1
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

    spans = container_spans(streams)
    coverage = container_coverage(streams, spans, bounds, restarts or {})
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
        warnings=coverage_warnings(streams, spans, bounds, collector.top, file_count),
    )


def _check_filter(include: Sequence[str], rule: Rule, bounds: Bounds) -> None:
    """Refuse a window or patterns that would silently keep every line or none."""
    start, end = bounds.start, bounds.end
    if start is not None and end is not None and start >= end:
        raise ConfigurationError(
            f"--since must be before --until: the window start {start.isoformat()} "
            f"is not before its end {end.isoformat()}, so no line could fall inside it"
        )
    for pattern in include:
        if not pattern.strip():
            raise ConfigurationError(
                f"--include {pattern!r} is empty: it would match every line; give "
                "text every call line holds, e.g. --include completions"
            )
    if rule == "literal" and not include:
        raise ConfigurationError(
            "no --include pattern: the literal rule would match every line; give "
            "at least one, or leave the default ('POST https' and 'completions')"
        )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)

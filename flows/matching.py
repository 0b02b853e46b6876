"""The filter step: find the completions calls in log files, count them, rank them.

The rules are in `flows.rules`, the reading in `flows.logfiles` and
`flows.logscan`, the deciding and counting in `flows.collector`. A JSON-structured
line is matched and shown by its message (escapes decoded once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flows.collector import CallCollector, to_record
from flows.errors import ConfigurationError
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
        A container's coverage is complete when its log (over all its instances)
        has lines, reaches into the window, and starts at most
        `COVERAGE_TOLERANCE` (5 minutes) after `start`; a log without any
        timestamp cannot be complete when `start` is given. Warnings say why a
        container is incomplete, and when no line was read, none carries a
        timestamp, or none falls inside the window (with the span seen).

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

    spans = _container_spans(streams)
    coverage = _coverage(streams, spans, bounds, restarts or {})
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
        warnings=_warnings(streams, spans, bounds, collector.top, file_count),
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


@dataclass
class _Span:
    """What one pod/container's log covers, over all its instances."""

    lines_read: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None


def _container_spans(
    streams: Mapping[StreamKey, StreamCounts],
) -> dict[tuple[str | None, str | None], _Span]:
    spans: dict[tuple[str | None, str | None], _Span] = {}
    for key, counts in streams.items():
        span = spans.setdefault((key.pod, key.container), _Span())
        span.lines_read += counts.lines_read
        if counts.earliest is not None and (
            span.earliest is None or counts.earliest < span.earliest
        ):
            span.earliest = counts.earliest
        if counts.latest is not None and (
            span.latest is None or counts.latest > span.latest
        ):
            span.latest = counts.latest
    return spans


def _coverage(
    streams: Mapping[StreamKey, StreamCounts],
    spans: Mapping[tuple[str | None, str | None], _Span],
    bounds: Bounds,
    restarts: Mapping[str, int],
) -> list[ContainerCoverage]:
    """One record per stream; complete when its container's log covers the window."""
    records = []
    for key in sorted(
        streams, key=lambda k: (k.pod or "", k.container or "", k.previous)
    ):
        counts = streams[key]
        gap = _gap(spans[(key.pod, key.container)], bounds)
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
                complete=gap is None,
            )
        )
    return records


def _gap(span: _Span, bounds: Bounds) -> tuple[str, str] | None:
    """Why a container's log does not cover the window, as (kind, text); or None.

    A log that read no line covers nothing; one without any timestamp cannot show
    that it reaches back to a window start.
    """
    start, end = bounds.start, bounds.end
    if span.lines_read == 0:
        return "empty", "its log is empty"
    if span.earliest is None or span.latest is None:
        if start is None:
            return None
        return "untimed", (
            "its log carries no timestamp, so it cannot show that it reaches back "
            f"to the window start {start.isoformat()}"
        )
    if start is not None and span.latest < start:
        return "outside", (
            f"its log ends at {span.latest.isoformat()}, before the window start "
            f"{start.isoformat()}"
        )
    if end is not None and span.earliest >= end:
        return "outside", (
            f"its log starts at {span.earliest.isoformat()}, at or after the "
            f"window end {end.isoformat()}"
        )
    if start is not None and span.earliest > start + COVERAGE_TOLERANCE:
        return "late", (
            f"its log starts at {span.earliest.isoformat()}, after the window start "
            f"{start.isoformat()}; calls before that are not in the analysis"
        )
    return None


def _warnings(
    streams: Mapping[StreamKey, StreamCounts],
    spans: Mapping[tuple[str | None, str | None], _Span],
    bounds: Bounds,
    top: TopCalls,
    file_count: int,
) -> list[str]:
    """Say everything that makes the result cover less than it seems to."""
    warnings, covered = _span_warnings(streams, spans, bounds, file_count)
    for (pod, container), span in sorted(
        spans.items(), key=lambda item: (item[0][0] or "", item[0][1] or "")
    ):
        gap = _gap(span, bounds)
        if gap is not None and gap[0] not in covered:
            name = f"{pod}/{container}" if pod or container else "the files read"
            warnings.append(f"coverage incomplete for {name}: {gap[1]}")
    kept = sum(counts.kept_without_time for counts in streams.values())
    if kept and "untimed" not in covered:
        warnings.append(
            f"{kept} lines without any timestamp were kept although a window was given"
        )
    if top.overflowed:
        warnings.append(
            "more distinct calls than could be counted: repeat counts of the selected "
            "calls may be too low"
        )
    return warnings


def _span_warnings(
    streams: Mapping[StreamKey, StreamCounts],
    spans: Mapping[tuple[str | None, str | None], _Span],
    bounds: Bounds,
    file_count: int,
) -> tuple[list[str], set[str]]:
    """Warnings about all the logs at once, and the kinds of gap they already tell."""
    lines_read = sum(span.lines_read for span in spans.values())
    if lines_read == 0:
        what = (
            "the file is empty or not a log"
            if file_count == 1
            else f"the {file_count} files are empty or not logs"
        )
        return [f"no log line was read: {what}"], {"empty", "untimed", "outside"}
    first = min((s.earliest for s in spans.values() if s.earliest), default=None)
    last = max((s.latest for s in spans.values() if s.latest), default=None)
    if first is None or last is None:
        if not bounds.given:
            return [
                f"none of the {lines_read} lines read carries a timestamp: the span "
                "of time they cover is unknown"
            ], {"untimed"}
        return [
            f"none of the {lines_read} lines read carries a timestamp, so the "
            f"window {_describe(bounds)} could not be applied: every line was kept"
        ], {"untimed"}
    timed_in_window = sum(
        counts.lines_in_window - counts.kept_without_time for counts in streams.values()
    )
    if bounds.given and timed_in_window == 0:
        return [
            f"no line falls inside the window {_describe(bounds)}: the timestamps "
            f"read run from {first.isoformat()} to {last.isoformat()}, so the logs "
            "cover another period"
        ], {"outside"}
    return [], set()


def _describe(bounds: Bounds) -> str:
    """The window in words, e.g. `from 2026-03-09T13:00:00+00:00 on`."""
    if bounds.start is not None and bounds.end is not None:
        return f"from {bounds.start.isoformat()} to {bounds.end.isoformat()}"
    if bounds.start is not None:
        return f"from {bounds.start.isoformat()} on"
    return f"before {bounds.end.isoformat()}" if bounds.end is not None else ""


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)

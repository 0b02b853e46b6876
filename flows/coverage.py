"""How far the scanned logs cover the window, and the warnings when they fall short."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from flows.logfiles import Bounds, StreamCounts, StreamKey
from flows.records import ContainerCoverage
from flows.stats import TopCalls

# A log that starts this long after the window start still covers the window: a
# container is often quiet for a few minutes, and `sinceSeconds` is whole seconds.
COVERAGE_TOLERANCE = timedelta(minutes=5)


@dataclass
class ContainerSpan:
    """What one pod/container's log covers, over all its instances."""

    lines_read: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None


def container_spans(
    streams: Mapping[StreamKey, StreamCounts],
) -> dict[tuple[str | None, str | None], ContainerSpan]:
    """Merge the instances of each pod/container into one span.

    Args:
        streams: What the scan counted per pod/container/instance.

    Returns:
        One span per (pod, container), over all its instances.
    """
    spans: dict[tuple[str | None, str | None], ContainerSpan] = {}
    for key, counts in streams.items():
        span = spans.setdefault((key.pod, key.container), ContainerSpan())
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


def container_coverage(
    streams: Mapping[StreamKey, StreamCounts],
    spans: Mapping[tuple[str | None, str | None], ContainerSpan],
    bounds: Bounds,
    restarts: Mapping[str, int],
) -> list[ContainerCoverage]:
    """One record per stream; complete when its container's log covers the window.

    Args:
        streams: What the scan counted per pod/container/instance.
        spans: From `container_spans(streams)`.
        bounds: The window the scan applied.
        restarts: Restart counts by `pod/container`, copied into the records.

    Returns:
        The records, sorted by pod, container, and current before previous.
    """
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


def _gap(span: ContainerSpan, bounds: Bounds) -> tuple[str, str] | None:
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


def coverage_warnings(
    streams: Mapping[StreamKey, StreamCounts],
    spans: Mapping[tuple[str | None, str | None], ContainerSpan],
    bounds: Bounds,
    top: TopCalls,
    file_count: int,
) -> list[str]:
    """Say everything that makes the result cover less than it seems to.

    Args:
        streams: What the scan counted per pod/container/instance.
        spans: From `container_spans(streams)`.
        bounds: The window the scan applied.
        top: The selection of calls; an overflow makes its counts too low.
        file_count: How many files were read, for the message when none had lines.

    Returns:
        The warnings; those about all the logs at once come first.
    """
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
    spans: Mapping[tuple[str | None, str | None], ContainerSpan],
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

"""The filter step: which log lines are completions calls, and what they add up to.

Two rules:

- `literal` (the default): the line, as shown, contains every include pattern
  (by default `POST https` and `completions`), like `grep -F … | grep -F …`.
- `extended`: the line is a POST (or an SDK response line) to a path containing
  `completions`, in a format `flows.calls` knows (httpx / OpenAI Python SDK, OpenAI
  Node SDK, envoy and nginx access logs, JSON loggers with the method and URL in
  separate fields), over `https` or `http`. Include patterns are not used.

Under both rules an SDK line that only announces a retry is never a call.
A JSON-structured line is matched and shown by its message (escapes decoded once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from flows.calls import (
    ParsedCall,
    is_retry_line,
    parse_call,
    parse_text,
    redact_urls,
)
from flows.calls import _httpx as _httpx_call
from flows.logfiles import BLOCK_SIZE, Bounds, LogicalLine, StreamCounts, StreamKey
from flows.logscan import CandidateBatch, LogScanner
from flows.logtext import decode, shown_text, strip_ansi, truncate
from flows.records import CallRecord, ContainerCoverage, FilterResult, LogFile
from flows.stats import (
    CallCounter,
    TopCalls,
    call_identity,
    raw_identity,
    severity,
)

logger = logging.getLogger(__name__)

DEFAULT_INCLUDE: tuple[str, ...] = ("POST https", "completions")
Rule = Literal["literal", "extended"]
# A log that starts this long after the window start still covers the window: a
# container is often quiet for a few minutes, and `sinceSeconds` is whole seconds.
COVERAGE_TOLERANCE = timedelta(minutes=5)

_WORD = re.compile(r"[A-Za-z0-9]+")


def words_of(include: Sequence[str], rule: Rule) -> list[bytes]:
    """The words (letters and digits) every matching line holds in its raw bytes.

    JSON encoders never escape letters and digits, and colour formatters put
    their ANSI sequences around words, not inside them; so a line whose raw bytes
    lack one of these words cannot match, whatever escapes or colours it has.
    """
    if rule == "extended":
        return [b"completions"]
    found = {word for pattern in include for word in _WORD.findall(pattern)}
    return sorted((word.encode() for word in found), key=lambda w: (-len(w), w))


def anchor_for(include: Sequence[str], rule: Rule) -> bytes:
    """The longest of `words_of`: the text searched for in whole blocks.

    An empty anchor (patterns without letters or digits) makes every line a
    candidate.
    """
    words = words_of(include, rule)
    return words[0] if words else b""


class Matcher:
    """Decides whether a shown line is a call under a rule."""

    def __init__(self, include: Sequence[str], rule: Rule) -> None:
        if rule not in ("literal", "extended"):
            raise ValueError(f"unknown rule {rule!r}: use 'literal' or 'extended'")
        self.include = tuple(include)
        self.rule = rule

    def matches(self, text: str, fields: dict[str, Any] | None) -> bool:
        """True when the line counts as a completions call."""
        return self.decide(text, parse_call(text, fields))

    def decide(self, text: str, call: ParsedCall | None) -> bool:
        """Like `matches`, given the call already parsed from the same line."""
        if self.rule == "literal":
            return all(pattern in text for pattern in self.include) and not (
                is_retry_line(text)
            )
        return call is not None and _is_completions_call(call)


def to_record(
    line: LogicalLine, text: str, fields: dict[str, Any] | None
) -> CallRecord:
    """A matched line as a call record (raw line when its format is unknown)."""
    call = parse_call(text, fields)
    record = CallRecord(
        timestamp=line.moment,
        pod=line.stream.pod,
        container=line.stream.container,
        line=truncate(redact_urls(text)),
    )
    if call is None:
        return record
    return record.model_copy(update=vars(call))


class _Collector:
    """Receives candidate lines: decides, parses, counts and ranks them.

    Most matched lines are httpx lines whose call part (from `HTTP Request:` on)
    repeats; those take a fast lane that parses each distinct call part once.
    Every other line takes the general lane; both give the same records.
    """

    _CACHE_LIMIT = 10_000

    def __init__(self, matcher: Matcher, top_n: int) -> None:
        self.matcher = matcher
        self.counter = CallCounter()
        self.top = TopCalls(top_n)
        self._words = words_of(matcher.include, matcher.rule)
        self._known: dict[bytes, _KnownCall | None] = {}
        self._decisions: dict[str, _Decision] = {}

    def line(self, line: LogicalLine) -> None:
        """One candidate line: the general lane."""
        if all(word in line.content for word in self._words):
            self._general(line)

    def batch(self, batch: CandidateBatch) -> None:
        """The candidates of one block, grouped by their httpx call part."""
        block, find = batch.block, batch.block.find
        words = self._words
        coloured = b"\x1b" in block
        groups: dict[bytes, list[int]] = {}
        for index, (start, end) in enumerate(batch.spans):
            if any(find(word, start, end) < 0 for word in words):
                continue  # cannot match: a word of the patterns is missing
            at = find(b"HTTP Request: ", start, end)
            if (
                at < 0
                or find(b"etrying", start, end) >= 0
                or (coloured and find(b"\x1b", start, end) >= 0)
            ):
                self._general(batch.line(index))
                continue
            part = block[at:end]
            group = groups.get(part)
            if group is None:
                groups[part] = [index]
            else:
                group.append(index)
        for part, indexes in groups.items():
            known = self._known.get(part) or self._learn(part)
            if known is None or not known.fits(self.matcher):
                for index in indexes:
                    self._general(batch.line(index))
            elif known.wanted:
                self._count(batch, known, indexes)

    def _count(
        self, batch: CandidateBatch, known: _KnownCall, indexes: list[int]
    ) -> None:
        call, stream = known.call, batch.stream
        if batch.hour is not None:
            self.counter.count(
                call.status, call.host, call.path, stream.pod, batch.hour, len(indexes)
            )
        else:
            for index in indexes:
                hour = batch.line(index).hour
                self.counter.count(call.status, call.host, call.path, stream.pod, hour)
        latest = batch.line(indexes[-1])
        if not batch.ordered:
            lines = [batch.line(index) for index in indexes]
            latest = min(lines, key=_newest_first)
        self.top.offer(
            (stream.pod, stream.container, *known.identity),
            known.level,
            lambda: latest.moment,
            lambda: to_record(latest, *shown_text(decode(strip_ansi(latest.content)))),
            len(indexes),
        )

    def _learn(self, part: bytes) -> _KnownCall | None:
        if part in self._known:
            return None
        if len(self._known) >= self._CACHE_LIMIT:
            self._known.clear()
        call = _httpx_call(decode(part))
        # A part ending in "}" may close a JSON record: those lines are parsed whole.
        known = None
        if call is not None and not part.rstrip().endswith(b"}"):
            known = _KnownCall(call, part, self.matcher)
        self._known[part] = known
        return known

    def _general(self, line: LogicalLine) -> None:
        text, fields = shown_text(decode(strip_ansi(line.content)))
        decision = self._decisions.get(text)
        if decision is None:
            call = parse_call(text, fields)
            decision = _Decision(self.matcher.decide(text, call), call)
            # Only a decision that the text alone made can be reused for the text.
            if fields is None or (call is not None and parse_text(text) == call):
                if len(self._decisions) >= self._CACHE_LIMIT:
                    self._decisions.clear()
                self._decisions[text] = decision
        if not decision.wanted:
            return
        stream, call = line.stream, decision.call
        if call is None:
            same = raw_identity(
                stream.pod, stream.container, truncate(redact_urls(text))
            )
            self.counter.count(None, None, None, stream.pod, line.hour)
            level = severity(None)
        else:
            same = (stream.pod, stream.container, *call_identity(call))
            self.counter.count(call.status, call.host, call.path, stream.pod, line.hour)
            level = severity(call.status)
        self.top.offer(
            same, level, lambda: line.moment, lambda: to_record(line, text, fields)
        )


class _Decision:
    """Whether a shown text is a match, and the call parsed from it."""

    __slots__ = ("call", "wanted")

    def __init__(self, wanted: bool, call: ParsedCall | None) -> None:
        self.wanted = wanted
        self.call = call


class _KnownCall:
    """A parsed httpx call part, with what counting and ranking need from it.

    `wanted` says whether every line holding this part is a match: the part holds
    every literal pattern (then so does the line), or it is a completions call.
    """

    __slots__ = ("call", "identity", "level", "rule", "wanted")

    def __init__(self, call: ParsedCall, part: bytes, matcher: Matcher) -> None:
        self.call = call
        self.rule = matcher.rule
        if matcher.rule == "literal":
            text = decode(part)
            self.wanted = all(pattern in text for pattern in matcher.include)
        else:
            self.wanted = _is_completions_call(call)
        self.identity = call_identity(call)
        self.level = severity(call.status)

    def fits(self, matcher: Matcher) -> bool:
        """False when the decision needs the whole line (a pattern outside the part)."""
        return self.rule != "literal" or self.wanted


def _newest_first(line: LogicalLine) -> tuple[float, bytes]:
    """Sort key: the most recent line first, and of equal times the smaller text."""
    moment = line.moment
    return (-moment.timestamp() if moment else float("inf"), line.content)


def _is_completions_call(call: ParsedCall) -> bool:
    return (
        call.method in (None, "POST")
        and call.scheme in (None, "http", "https")
        and "completions" in (call.path or "")
    )


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
) -> FilterResult:
    """Read log files once, streaming, and find the completions calls in [start, end).

    Args:
        files: the logs to read (see `flows.logfiles` for the formats).
        include: patterns of the literal rule.
        rule: `literal` or `extended` (see the module docstring).
        top_n: how many calls to select (see `TopCalls` for the order).
        start: keep lines at or after this time (None: no lower bound).
        end: keep lines before this time (None: no upper bound).
        restarts: restart counts by `pod/container`, copied into the coverage.
        block_size: bytes read at a time; the result does not depend on it.

    Returns:
        Counts, statistics over every matched call, the selected calls, and one
        coverage record per pod/container/instance. A line without a timestamp of
        its own takes that of the line before it; lines before the first
        timestamped line of a log are kept, and a warning counts them.

    Raises:
        LogFileError: if a file cannot be read.
    """
    matcher = Matcher(include, rule)
    anchor = anchor_for(include, rule)
    bounds = Bounds(_utc(start), _utc(end))
    collector = _Collector(matcher, top_n)
    streams: dict[StreamKey, StreamCounts] = {}
    for log_file in files:
        scanner = LogScanner(
            log_file,
            anchor=anchor,
            bounds=bounds,
            sink=collector,
            block_size=block_size,
        )
        for key, counts in scanner.run().items():
            _merge(streams.setdefault(key, StreamCounts()), counts)
        logger.info("Read %s (%s)", log_file.path, scanner.layout.value)

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


def _merge(into: StreamCounts, counts: StreamCounts) -> None:
    into.lines_read += counts.lines_read
    into.lines_in_window += counts.lines_in_window
    into.kept_without_time += counts.kept_without_time
    for moment in (counts.earliest, counts.latest):
        if moment is not None:
            into.saw(moment)


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

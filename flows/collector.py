"""Collecting matched calls: deciding each candidate line, counting and ranking it."""

from __future__ import annotations

from typing import Any

from flows.calls import ParsedCall, parse_call, parse_text, redact_urls
from flows.calls import _httpx as _httpx_call
from flows.logfiles import LogicalLine
from flows.logscan import CandidateBatch
from flows.logtext import decode, shown_text, strip_ansi, truncate
from flows.records import CallRecord
from flows.rules import Matcher, is_completions_call, words_of
from flows.stats import CallCounter, TopCalls, call_identity, raw_identity, severity


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


class CallCollector:
    """Receives candidate lines: decides, parses, counts and ranks them.

    Most matched lines are httpx lines whose call part (from `HTTP Request:` on)
    repeats; those take a fast lane that parses each distinct call part once.
    Every other line takes the general lane; both give the same records.
    """

    _CACHE_LIMIT = 2_000

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
        others = self._words[1:]  # the first is the anchor, in every candidate
        coloured = b"\x1b" in block
        groups: dict[bytes, list[int]] = {}
        for index, (start, end) in enumerate(batch.spans):
            if coloured and find(b"\x1b", start, end) >= 0:
                line = strip_ansi(block[start:end])
                at = line.find(b"HTTP Request: ")
                part = line[at:] if at >= 0 else b""
            else:
                at = find(b"HTTP Request: ", start, end)
                part = block[at:end] if at >= 0 else b""
            if part and find(b"etrying", start, end) < 0:
                # The part decides for the whole line (see `_KnownCall.wanted`).
                group = groups.get(part)
                if group is None:
                    groups[part] = [index]
                else:
                    group.append(index)
                continue
            for word in others:
                if find(word, start, end) < 0:
                    break  # cannot match: a word of the patterns is missing
            else:
                self._general(batch.line(index))
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
            self.wanted = is_completions_call(call)
        self.identity = call_identity(call)
        self.level = severity(call.status)

    def fits(self, matcher: Matcher) -> bool:
        """False when the decision needs the whole line (a pattern outside the part)."""
        return self.rule != "literal" or self.wanted


def _newest_first(line: LogicalLine) -> tuple[float, bytes]:
    """Sort key: the most recent line first, and of equal times the smaller text."""
    moment = line.moment
    return (-moment.timestamp() if moment else float("inf"), line.content)

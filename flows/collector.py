"""Collecting matched calls: deciding each candidate line, counting and ranking it."""

from __future__ import annotations

import re
from typing import Any

from flows.calls import ParsedCall, parse_call, parse_text, redact_urls
from flows.calls import _httpx as _httpx_call
from flows.logfiles import LogicalLine
from flows.logscan import CandidateBatch
from flows.logtext import decode, json_message, shown_text, strip_ansi, truncate
from flows.records import CallRecord
from flows.rules import Matcher, is_completions_call, words_of
from flows.stats import CallCounter, TopCalls, call_identity, raw_identity, severity

# A JSON record that opens with its time member (a plain string), as structured
# loggers write it: `{"timestamp": "2026-03-10 08:00:00,123", ...`.
_JSON_TIME_LEAD = re.compile(
    rb'\{"(?:timestamp|ts|time|@timestamp|asctime)": ?"[^"\\\x00-\x1f]*", ?'
)


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
        self._decisions: dict[str, _Verdict | None] = {}
        self._records: dict[bytes, _Verdict | None] = {}

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
        judged: dict[tuple[object, ...], _Judged] = {}
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
                self._judge_into(batch.line(index), index, judged)
        for part, indexes in groups.items():
            known = self._known.get(part) or self._learn(part)
            if known is None or not known.fits(self.matcher):
                for index in indexes:
                    self._judge_into(batch.line(index), index, judged)
            elif known.wanted:
                same = (batch.stream.pod, batch.stream.container, *known.identity)
                self._tally(batch, _Judged(same, known.level, known.call), indexes)
        for verdict in judged.values():
            self._tally(batch, verdict, verdict.indexes)

    def _tally(
        self, batch: CandidateBatch, verdict: _Judged, indexes: list[int]
    ) -> None:
        """Count identical calls of one block at once, and offer the latest."""
        call = verdict.call
        status, host, path = (
            (call.status, call.host, call.path) if call else (None,) * 3
        )
        pod = batch.stream.pod
        if batch.hour is not None:
            self.counter.count(status, host, path, pod, batch.hour, len(indexes))
        else:
            for index in indexes:
                self.counter.count(status, host, path, pod, batch.line(index).hour)
        latest = batch.line(indexes[-1])
        if not batch.ordered:
            latest = min((batch.line(index) for index in indexes), key=_newest_first)
        self._offer(verdict, latest, len(indexes))

    def _offer(self, verdict: _Judged, latest: LogicalLine, times: int) -> None:
        self.top.offer(
            verdict.same,
            verdict.level,
            lambda: latest.moment,
            lambda: to_record(latest, *shown_text(decode(strip_ansi(latest.content)))),
            times,
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
        """Decide, count and offer one line on its own."""
        verdict = self._judge(line)
        if verdict is not None:
            call = verdict.call
            facts = (call.status, call.host, call.path) if call else (None,) * 3
            self.counter.count(*facts, line.stream.pod, line.hour)
            self._offer(verdict, line, 1)

    def _judge_into(
        self, line: LogicalLine, index: int, judged: dict[tuple[object, ...], _Judged]
    ) -> None:
        verdict = self._judge(line)
        if verdict is not None:
            judged.setdefault(verdict.same, verdict).indexes.append(index)

    def _judge(self, line: LogicalLine) -> _Judged | None:
        """Whether a line is a match, and if so what identifies its call."""
        content = line.content
        lead = _JSON_TIME_LEAD.match(content)
        if lead is not None and b"\x1b" not in content:
            # A record's verdict never reads its time member: records that differ
            # only in it share one (see `_record_verdict`).
            rest = content[lead.end() :]
            if rest in self._records:
                verdict = self._records[rest]
            else:
                verdict = self._record_verdict(content, rest)
        else:
            verdict = self._verdict(*shown_text(decode(strip_ansi(content))))
        if verdict is None:
            return None
        stream = line.stream
        same = (stream.pod, stream.container, *verdict.tail)
        return _Judged(same, verdict.level, verdict.call)

    def _record_verdict(self, content: bytes, rest: bytes) -> _Verdict | None:
        """Judge a JSON record that opens with its time, and remember the verdict.

        The message and the call fields decide; a record without a message is
        shown whole, time included, so its verdict is not remembered.
        """
        text, fields = shown_text(decode(content))
        verdict = self._verdict(text, fields)
        if fields is not None and json_message(fields) is not None:
            if len(self._records) >= self._CACHE_LIMIT:
                self._records.clear()
            self._records[rest] = verdict
        return verdict

    def _verdict(self, text: str, fields: dict[str, Any] | None) -> _Verdict | None:
        """The verdict on a shown text and its JSON fields (None: not a match)."""
        if text in self._decisions:
            return self._decisions[text]
        call = parse_call(text, fields)
        verdict = None
        if self.matcher.decide(text, call):
            verdict = _Verdict(call)
            if call is None:
                shown = truncate(redact_urls(text))
                verdict.tail = raw_identity(None, None, shown)[2:]
        # Only a decision that the text alone made can be reused for the text.
        if fields is None or (call is not None and parse_text(text) == call):
            if len(self._decisions) >= self._CACHE_LIMIT:
                self._decisions.clear()
            self._decisions[text] = verdict
        return verdict


class _Judged:
    """A matched call's identity, severity and parsed call; lines that share it."""

    __slots__ = ("call", "indexes", "level", "same")

    def __init__(
        self, same: tuple[object, ...], level: int, call: ParsedCall | None
    ) -> None:
        self.same = same
        self.level = level
        self.call = call
        self.indexes: list[int] = []


class _Verdict:
    """A matched call's parsed form, severity and identity (without the stream)."""

    __slots__ = ("call", "level", "tail")

    def __init__(self, call: ParsedCall | None) -> None:
        self.call = call
        self.level = severity(call.status if call else None)
        self.tail = call_identity(call) if call else ()


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

"""Scan one log file block by block: count every line, hand on the candidate lines.

See `flows.logfiles` for why the anchor search cannot miss a match. Most blocks
take the fast path (C-speed counting and searching); blocks that straddle a window
bound, files with several streams (`--prefix`) and an empty anchor take the exact
line-by-line path, which gives the same counts.
"""

from __future__ import annotations

from datetime import datetime
from itertools import chain
from typing import Protocol

from flows.logfiles import (
    BLOCK_SIZE,
    MAX_LINE_BYTES,
    Bounds,
    FilePart,
    Layout,
    LogicalLine,
    StreamCounts,
    StreamKey,
    _Pending,
    _Record,
    detect_layout,
    hour_of,
    own_time,
    read_blocks,
    split_record,
    writes_times,
)
from flows.logtext import strip_ansi
from flows.records import LogFile

# Lines looked at from each end of a block for its first and last timestamps.
_EDGE_LINES = 200
# A line this long or longer has a newline-free span covering a whole probe step.
_PROBE = 8192


class CandidateBatch:
    """The candidate lines of one fast-path block, all inside the window.

    `spans` holds (start, end) of each candidate physical line in `block`; lines
    are cut into `LogicalLine`s only when asked for, so a sink can count many
    identical lines without touching each one in Python. `hour` is the UTC hour
    every line of the block shares, when they share one; `ordered` is False when
    the block's last line is older than its first (then no line order is assumed).
    """

    def __init__(
        self,
        scanner: LogScanner,
        block: bytes,
        before: datetime | None,
        hour: str | None,
        ordered: bool,
    ) -> None:
        self.block = block
        self.spans: list[tuple[int, int]] = []
        self.stream = scanner.default
        self.hour = hour
        self.ordered = ordered
        self._scanner = scanner
        self._before = before

    def line(self, index: int) -> LogicalLine:
        """The candidate at `index` as a logical line."""
        start, end = self.spans[index]
        return self._scanner._line(self.block, start, end, self._before)


class CandidateSink(Protocol):
    """Receives the candidate lines a scanner finds."""

    def line(self, line: LogicalLine) -> None:
        """One candidate line (exact path)."""

    def batch(self, batch: CandidateBatch) -> None:
        """The candidate lines of one block (fast path)."""


class LogScanner:
    """Counts the lines of one log file and reports those containing an anchor.

    Args:
        log_file: the file to read.
        anchor: bytes every interesting line contains (b"" means every line).
        bounds: the window; lines outside it are counted in `lines_read` only.
        sink: receives each in-window logical line holding the anchor.
        block_size: bytes read at a time; results do not depend on it.
        part: read only this range of the file (one process of a parallel scan).
    """

    def __init__(
        self,
        log_file: LogFile,
        *,
        anchor: bytes,
        bounds: Bounds,
        sink: CandidateSink,
        block_size: int = BLOCK_SIZE,
        part: FilePart | None = None,
    ) -> None:
        self.log_file = log_file
        self.part = part
        self.anchor = anchor
        self.bounds = bounds
        self.sink = sink
        self.block_size = block_size
        self.default = StreamKey(log_file.pod, log_file.container, log_file.previous)
        self.streams: dict[StreamKey, StreamCounts] = {}
        self.layout = Layout.PLAIN
        self.timed = True
        self._pending: dict[tuple[StreamKey, bytes], _Pending] = {}
        self._limit = 0  # the current block's data ends here (see read_blocks)

    def run(self) -> dict[StreamKey, StreamCounts]:
        """Read the whole file; return the counters of every stream found in it."""
        part = self.part
        blocks = read_blocks(
            self.log_file.path,
            self.block_size,
            part.start if part else 0,
            part.stop if part else None,
        )
        first = next(blocks, None)
        if part is not None:
            self.layout, self.timed = part.layout, part.timed
            self.streams[self.default] = StreamCounts(last_time=part.last_time)
        elif first is not None:
            self._start(first[0][: min(first[1], 65536)])
        if first is not None:
            for block, limit in chain([first], blocks):
                self._limit = limit
                self._block(block)
        for key in list(self._pending):
            self._emit_pending(key)
        return self.streams or {self.default: StreamCounts()}

    def _start(self, first: bytes) -> None:
        self.layout = detect_layout(self.log_file, strip_ansi(first))
        self.timed = writes_times(self.layout, first, self.default)

    def _block(self, block: bytes) -> None:
        multi = self.layout in (Layout.PREFIX, Layout.PREFIX_TIMESTAMPS)
        if multi or not self.anchor or not self._fast(block):
            self._slow(block)

    # The exact path: every physical line, one at a time.

    def _slow(self, block: bytes) -> None:
        position, size = 0, self._limit
        while position < size:
            end = block.find(b"\n", position)
            self._feed(split_record(block[position:end], self.layout, self.default))
            position = end + 1

    def _feed(self, record: _Record) -> None:
        key = (record.stream, record.channel)
        pending = self._pending.get(key)
        if pending is not None:
            continues = self.layout is Layout.CRI or record.stamp == pending.stamp
            if continues:
                if pending.size < MAX_LINE_BYTES:
                    pending.parts.append(record.content)
                    pending.size += len(record.content)
                if not record.partial:
                    self._emit_pending(key)
                return
            self._emit_pending(key)
        if record.partial:
            self._pending[key] = _Pending(
                record.stamp, [record.content], len(record.content)
            )
            return
        self._emit(record.stream, own_time(record, self.timed), record.content)

    def _emit_pending(self, key: tuple[StreamKey, bytes]) -> None:
        pending = self._pending.pop(key)
        content = b"".join(pending.parts)[:MAX_LINE_BYTES]
        record = _Record(key[0], pending.stamp, key[1], False, content)
        self._emit(key[0], own_time(record, self.timed), content)

    def _emit(self, stream: StreamKey, own: datetime | None, content: bytes) -> None:
        counts = self.streams.get(stream)
        if counts is None:
            counts = self.streams[stream] = StreamCounts()
        counts.lines_read += 1
        moment = own or counts.last_time
        if own is not None:
            counts.saw(own)
        if moment is None:
            if self.bounds.given:
                counts.kept_without_time += 1
        elif self.bounds.side(moment) != 0:
            return
        counts.lines_in_window += 1
        if self.anchor in content:
            self.sink.line(LogicalLine(stream, moment, content))

    # The fast path: one stream, blocks wholly inside or outside the window.

    def _fast(self, block: bytes) -> bool:
        counts = self.streams.get(self.default)
        if counts is None:
            counts = self.streams[self.default] = StreamCounts()
        before = counts.last_time
        first, first_at_top, last = self._edge_times(block)
        inside = self._uniform(before, first, first_at_top, last)
        if inside is None:
            return False
        specials = self._specials(block)
        for start in specials:
            end = block.find(b"\n", start)
            self._feed(split_record(block[start:end], self.layout, self.default))
        bulk = block.count(b"\n", 0, self._limit) - len(specials)
        counts.lines_read += bulk
        if inside:
            counts.lines_in_window += bulk
            if self.bounds.given and not self.timed:
                counts.kept_without_time += bulk
            self._candidates(block, set(specials), before, first, first_at_top, last)
        for moment in (first, last):
            if moment is not None:
                counts.saw(moment)
        return True

    def _uniform(
        self,
        before: datetime | None,
        first: datetime | None,
        first_at_top: bool,
        last: datetime | None,
    ) -> bool | None:
        """True/False when the whole block is inside/outside, None when unsure."""
        if not self.bounds.given or not self.timed:
            return True
        times = [first, last] if first_at_top else [before, first, last]
        if first is None and last is None:
            times = [before]
        if any(moment is None for moment in times):
            return None
        if first is not None and last is not None and first > last:
            return None
        sides = {self.bounds.side(moment) for moment in times if moment}
        if len(sides) != 1:
            return None
        return sides == {0}

    def _edge_times(
        self, block: bytes
    ) -> tuple[datetime | None, bool, datetime | None]:
        if not self.timed:
            return None, False, None
        first: datetime | None = None
        first_at_top = False
        position = 0
        for index in range(_EDGE_LINES):
            end = block.find(b"\n", position)
            if end < 0:
                break
            first = self._time_of(block[position:end])
            if first is not None:
                first_at_top = index == 0
                break
            position = end + 1
        last: datetime | None = None
        end = self._limit - 1
        for _ in range(_EDGE_LINES):
            if end <= 0:
                break
            start = block.rfind(b"\n", 0, end) + 1
            last = self._time_of(block[start:end])
            if last is not None:
                break
            end = start - 1
        return first, first_at_top, last

    def _time_of(self, line: bytes) -> datetime | None:
        return own_time(split_record(line, self.layout, self.default), self.timed)

    def _specials(self, block: bytes) -> list[int]:
        """Starts of the physical lines that belong to runtime-split lines."""
        starts: set[int] = set()
        if self.layout is Layout.CRI:
            for _, channel in self._pending:
                self._add_next(block, 0, channel, starts)
            for marker in (b"stdout P", b"stderr P"):
                hit = block.find(marker, 0, self._limit)
                while hit >= 0:
                    start = block.rfind(b"\n", 0, hit) + 1
                    end = block.find(b"\n", hit)
                    record = split_record(block[start:end], self.layout, self.default)
                    if record.partial and record.stamp is not None:
                        starts.add(start)
                        self._add_next(block, end + 1, record.channel, starts)
                    hit = block.find(marker, end, self._limit)
        elif self.layout is Layout.TIMESTAMPS:
            if self._pending:
                starts.add(0)
            for probe in range(0, self._limit, _PROBE):
                if block.find(b"\n", probe, min(probe + _PROBE, self._limit)) >= 0:
                    continue
                start = block.rfind(b"\n", 0, probe) + 1
                end = block.find(b"\n", probe)
                record = split_record(block[start:end], self.layout, self.default)
                if record.partial:
                    starts.add(start)
                    if end + 1 < self._limit:
                        starts.add(end + 1)
        return sorted(starts)

    def _add_next(
        self, block: bytes, position: int, channel: bytes, starts: set[int]
    ) -> None:
        """Add the next CRI record of `channel` at or after `position`."""
        while position < self._limit:
            end = block.find(b"\n", position)
            record = split_record(block[position:end], self.layout, self.default)
            if record.channel == channel:
                starts.add(position)
                return
            position = end + 1

    def _candidates(
        self,
        block: bytes,
        specials: set[int],
        before: datetime | None,
        first: datetime | None,
        first_at_top: bool,
        last: datetime | None,
    ) -> None:
        hour = None
        if first is not None and last is not None:
            lead = first if first_at_top else before
            hours = {hour_of(moment) for moment in (lead, first, last) if moment}
            if len(hours) == 1 and lead is not None:
                hour = hours.pop()
        ordered = first is None or last is None or first <= last
        batch = CandidateBatch(self, block, before, hour, ordered)
        spans = batch.spans
        anchor, find, rfind, limit = self.anchor, block.find, block.rfind, self._limit
        hit = find(anchor, 0, limit)
        while hit >= 0:
            start = rfind(b"\n", 0, hit) + 1
            end = find(b"\n", hit)
            hit = find(anchor, end + 1, limit)
            if start not in specials:
                spans.append((start, end))
        if spans:
            self.sink.batch(batch)

    def _line(
        self, block: bytes, start: int, end: int, before: datetime | None
    ) -> LogicalLine:
        if self.layout is Layout.TIMESTAMPS:
            # The hot path: `<stamp> <content>`, checked without a regex.
            space = block.find(b" ", start, end)
            # 84 is "T" and 90 is "Z": a UTC RFC 3339 stamp, as the API writes it.
            if (
                20 <= space - start <= 35
                and block[start + 10] == 84 == block[space - 1] - 6
            ):
                return LogicalLine(
                    self.default, None, block[space + 1 : end], block[start:space]
                )
        record = split_record(block[start:end], self.layout, self.default)
        line = LogicalLine(record.stream, None, record.content, record.stamp)
        if record.stamp is None:
            line.timestamp = own_time(record, self.timed) or self._inherited(
                block, start, before
            )
        return line

    def _inherited(
        self, block: bytes, start: int, before: datetime | None
    ) -> datetime | None:
        """The time of the nearest earlier timestamped line (this block, or before)."""
        if not self.timed:
            return None
        end = start - 1
        while end > 0:
            line_start = block.rfind(b"\n", 0, end) + 1
            moment = self._time_of(block[line_start:end])
            if moment is not None:
                return moment
            end = line_start - 1
        return before

"""Reading log files in big binary blocks: formats, split lines, windows and coverage.

Speed comes from doing per-line Python work only for the few lines that need it.
A block is counted with `bytes.count(b"\\n")`, and only the lines that contain the
*anchor* (a piece of text every match must contain) are cut out and handed on.
The anchor is a necessary condition, never a sufficient one, and nothing a real
log contains hides it:

- the anchor is a word (letters and digits): colour formatters put their ANSI
  CSI sequences around words, not inside them, so the raw line still holds it,
  and each candidate is stripped of ANSI sequences before it is matched;
- lines the runtime split (CRI `P` records, 16 KiB `--timestamps` fragments) are
  rejoined and the joined line is tested as a whole;
- JSON escapes cannot hide the anchor either: encoders never escape letters and
  digits.

The one input that would hide it, a colour sequence inside a word
(`compl\\x1b[1metions`), is not something formatters write.

Windows: a line's time is its own timestamp (the runtime's, or else the one the
application wrote at its start), or else the time of the nearest earlier line of
the same log that has one. Lines before the first timestamped line of a log are
kept and counted in `StreamCounts.kept_without_time`. One container's log is
written in time order, so a block whose first and last times both fall inside
(or both on the same side outside) the window is counted whole; a block that
straddles a bound is read line by line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from flows.errors import LogFileError
from flows.logtext import app_timestamp, decode, parse_rfc3339, strip_ansi
from flows.records import LogFile

BLOCK_SIZE = 1 << 20
# A physical line longer than this is cut (and counted once): memory stays bounded
# whatever the input, and a match is looked for in its first MAX_LINE_BYTES.
MAX_LINE_BYTES = 1 << 20
# Container runtimes split a line longer than this and repeat its timestamp.
SPLIT_BYTES = 16384
_SAMPLE_LINES = 64

_RFC3339 = rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
_RUNTIME_TS = re.compile(rb"(" + _RFC3339 + rb")(?: |$)")
_CRI = re.compile(rb"(" + _RFC3339 + rb") (stdout|stderr) ([PF])(?: |$)")
_PREFIX = re.compile(rb"\[pod/([^/\]\s]+)/([^/\]\s]+)\] ")


class Layout(Enum):
    """How the lines of a file are framed."""

    PLAIN = "plain"
    TIMESTAMPS = "timestamps"
    CRI = "cri"
    PREFIX = "prefix"
    PREFIX_TIMESTAMPS = "prefix+timestamps"


@dataclass(frozen=True, order=True)
class StreamKey:
    """One container instance's log: what a coverage record is about."""

    pod: str | None
    container: str | None
    previous: bool = False


@dataclass
class StreamCounts:
    """Counters of one stream; constant size whatever the input."""

    lines_read: int = 0
    lines_in_window: int = 0
    kept_without_time: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    last_time: datetime | None = None

    def saw(self, moment: datetime) -> None:
        if self.earliest is None or moment < self.earliest:
            self.earliest = moment
        if self.latest is None or moment > self.latest:
            self.latest = moment
        self.last_time = moment


class LogicalLine:
    """One logical log line: runtime prefix removed, split records rejoined.

    `stamp` is the runtime timestamp as written; it is parsed only when asked for.
    """

    __slots__ = ("content", "stamp", "stream", "timestamp")

    def __init__(
        self,
        stream: StreamKey,
        timestamp: datetime | None,
        content: bytes,
        stamp: bytes | None = None,
    ) -> None:
        self.stream = stream
        self.timestamp = timestamp
        self.content = content
        self.stamp = stamp

    @property
    def moment(self) -> datetime | None:
        """The line's time (its own, or inherited from the line before)."""
        if self.timestamp is None and self.stamp is not None:
            self.timestamp = parse_rfc3339(self.stamp)
        return self.timestamp

    @property
    def hour(self) -> str | None:
        """The UTC hour of the line, like `2026-03-10T08:00Z`."""
        if self.timestamp is None and self.stamp and self.stamp.endswith(b"Z"):
            return f"{self.stamp[:13].decode('ascii')}:00Z"
        moment = self.moment
        return hour_of(moment) if moment else None


def hour_of(moment: datetime) -> str:
    """The UTC hour of a time, like `2026-03-10T08:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:00Z")


@dataclass(frozen=True)
class Bounds:
    """The half-open window [start, end); a missing side is unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def given(self) -> bool:
        return self.start is not None or self.end is not None

    def side(self, moment: datetime) -> int:
        """-1 before the window, 0 inside, 1 at or after its end."""
        if self.start is not None and moment < self.start:
            return -1
        if self.end is not None and moment >= self.end:
            return 1
        return 0


@dataclass(frozen=True)
class FilePart:
    """A range of whole lines of one file, read by one process of a parallel scan.

    `last_time` is the time of the last timestamped line before `start`, which
    untimestamped lines at the start of the range take.
    """

    start: int
    stop: int
    layout: Layout
    timed: bool
    last_time: datetime | None = None


@dataclass
class _Record:
    stream: StreamKey
    stamp: bytes | None
    channel: bytes
    partial: bool
    content: bytes


@dataclass
class _Pending:
    stamp: bytes | None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


def read_blocks(
    path: Path, block_size: int = BLOCK_SIZE, start: int = 0, stop: int | None = None
) -> Iterator[tuple[bytes, int]]:
    """Yield `(chunk, limit)`: `chunk[:limit]` is whole lines, each ending in `\\n`.

    A regular file is read with `pread` in chunks of one fixed size (the line
    cut at the end of a chunk is read again at the start of the next): equal
    sizes let the allocator reuse the same memory, so the peak does not grow
    with the file, and no chunk is copied twice. Anything else (a pipe) is read
    as a stream. `start` and `stop` (line starts) limit a regular file's reading.

    Raises:
        LogFileError: if the file cannot be opened or read.
    """
    try:
        with path.open("rb") as handle:
            if path.is_file():
                yield from _positioned_blocks(handle.fileno(), block_size, start, stop)
            else:
                for block in _blocks(handle.read, block_size):
                    yield block, len(block)
    except OSError as error:
        raise LogFileError(
            f"cannot read log file {path}: {error.strerror or error}; "
            "check the path and its permissions"
        ) from error


def _positioned_blocks(
    descriptor: int, block_size: int, start: int, stop: int | None
) -> Iterator[tuple[bytes, int]]:
    position = start
    while stop is None or position < stop:
        size = block_size if stop is None else min(block_size, stop - position)
        chunk = os.pread(descriptor, size, position)
        if not chunk:
            return
        limit = chunk.rfind(b"\n") + 1
        if limit == 0:
            # One line longer than a block, or the last line without a newline.
            line, position = _long_line(descriptor, position)
            yield line, len(line)
            continue
        position += limit
        yield chunk, limit


def _long_line(descriptor: int, position: int) -> tuple[bytes, int]:
    """The line at `position` (cut at MAX_LINE_BYTES), and where the next begins."""
    head = os.pread(descriptor, MAX_LINE_BYTES + 1, position)
    newline = head.find(b"\n")
    if newline >= 0:
        return head[: newline + 1], position + newline + 1
    if len(head) <= MAX_LINE_BYTES:
        return head + b"\n", position + len(head)
    position += len(head)
    while True:  # skip the rest of the cut line
        rest = os.pread(descriptor, MAX_LINE_BYTES, position)
        newline = rest.find(b"\n")
        if not rest or newline >= 0:
            return head[:MAX_LINE_BYTES] + b"\n", position + newline + 1
        position += len(rest)


def _blocks(read: Callable[[int], bytes], block_size: int) -> Iterator[bytes]:
    carry = b""
    skipping = False
    while True:
        chunk = read(block_size)
        if not chunk:
            break
        if skipping:  # the rest of a line already cut at MAX_LINE_BYTES
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            chunk, skipping = chunk[newline + 1 :], False
        data = carry + chunk if carry else chunk
        end = data.rfind(b"\n") + 1
        if end:
            yield data[:end]
            carry = data[end:]
        else:
            carry = data
        if len(carry) > MAX_LINE_BYTES:
            yield carry[:MAX_LINE_BYTES] + b"\n"
            carry, skipping = b"", True
    if carry:
        yield carry + b"\n"


def detect_layout(log_file: LogFile, head: bytes) -> Layout:
    """The framing of a file, from its declared format or its first lines."""
    lines = [line for line in strip_ansi(head).split(b"\n")[:_SAMPLE_LINES] if line]
    if log_file.format == "timestamps":
        return Layout.TIMESTAMPS
    if log_file.format == "cri":
        return Layout.CRI
    if log_file.format == "plain":
        return Layout.PLAIN
    votes: dict[Layout, int] = {}
    for line in lines:
        layout = _classify(line)
        votes[layout] = votes.get(layout, 0) + 1
    if log_file.format == "prefix":
        timed = votes.get(Layout.PREFIX_TIMESTAMPS, 0) > votes.get(Layout.PREFIX, 0)
        return Layout.PREFIX_TIMESTAMPS if timed else Layout.PREFIX
    framed = [(count, layout.value, layout) for layout, count in votes.items()]
    framed = [vote for vote in framed if vote[2] is not Layout.PLAIN]
    if not framed:
        return Layout.PLAIN
    count, _, layout = max(framed)
    return layout if count * 2 >= len(lines) else Layout.PLAIN


def writes_times(layout: Layout, head: bytes, default: StreamKey) -> bool:
    """Whether a file's first lines carry timestamps (always so with runtime ones)."""
    if layout not in (Layout.PLAIN, Layout.PREFIX):
        return True
    sample = strip_ansi(head).split(b"\n")[:_SAMPLE_LINES]
    return any(own_time(split_record(line, layout, default), True) for line in sample)


def _classify(line: bytes) -> Layout:
    if _CRI.match(line):
        return Layout.CRI
    prefix = _PREFIX.match(line)
    if prefix:
        timed = _RUNTIME_TS.match(line, prefix.end())
        return Layout.PREFIX_TIMESTAMPS if timed else Layout.PREFIX
    if _RUNTIME_TS.match(line):
        return Layout.TIMESTAMPS
    return Layout.PLAIN


def split_record(line: bytes, layout: Layout, default: StreamKey) -> _Record:
    """Cut one physical line into its stream, runtime timestamp and content."""
    stream, rest = default, line
    if layout in (Layout.PREFIX, Layout.PREFIX_TIMESTAMPS):
        prefix = _PREFIX.match(line)
        if prefix:
            pod, container = (decode(part) for part in prefix.groups())
            stream = StreamKey(pod, container, default.previous)
            rest = line[prefix.end() :]
    if layout is Layout.CRI:
        cri = _CRI.match(rest)
        if cri:
            content = rest[cri.end() :]
            partial = cri.group(3) == b"P"
            return _Record(stream, cri.group(1), cri.group(2), partial, content)
    elif layout in (Layout.TIMESTAMPS, Layout.PREFIX_TIMESTAMPS):
        stamp = _RUNTIME_TS.match(rest)
        if stamp:
            content = rest[stamp.end() :]
            split = len(content) == SPLIT_BYTES
            return _Record(stream, stamp.group(1), b"", split, content)
    return _Record(stream, None, b"", False, rest)


def own_time(record: _Record, timed: bool) -> datetime | None:
    """The line's own timestamp: the runtime's, or else the application's."""
    if record.stamp is not None:
        return parse_rfc3339(record.stamp)
    if not timed:
        return None
    return app_timestamp(decode(strip_ansi(record.content[:4096])))

"""Scanning one big log file with several processes, each over its own lines.

Only files whose every line carries its time (`--timestamps`, the cluster's
format) or plain files are split, and only on Linux-like systems that can fork:
the ranges start at line starts, never inside a 16 KiB split line, and each
range knows the time of the line before it. The counts, statistics and top
calls of the ranges merge into exactly what one process finds.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from flows.collector import CallCollector
from flows.logfiles import (
    SPLIT_BYTES,
    Bounds,
    FilePart,
    Layout,
    StreamCounts,
    StreamKey,
    detect_layout,
    own_time,
    split_record,
    writes_times,
)
from flows.logscan import LogScanner
from flows.logtext import strip_ansi
from flows.records import LogFile
from flows.rules import Matcher, Rule
from flows.stats import CallCounter, TopExport

logger = logging.getLogger(__name__)

# Below this size, starting processes costs more than it saves.
PARALLEL_MIN_BYTES = 64 << 20
_LOOK_BACK = 1 << 20


@dataclass(frozen=True)
class PartJob:
    """Everything a worker process needs to scan one part of a file."""

    log_file: LogFile
    part: FilePart
    anchor: bytes
    bounds: Bounds
    include: tuple[str, ...]
    rule: Rule
    top_n: int
    block_size: int


@dataclass
class PartResult:
    """What a worker process found in its part."""

    streams: dict[StreamKey, StreamCounts]
    counter: CallCounter
    top: TopExport


def plan_parts(log_file: LogFile, workers: int) -> list[FilePart] | None:
    """Split a file into `workers` parts, or None when it should be read whole."""
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    path = log_file.path
    if not path.is_file() or path.stat().st_size < PARALLEL_MIN_BYTES:
        return None
    default = StreamKey(log_file.pod, log_file.container, log_file.previous)
    with path.open("rb") as handle:
        head = handle.read(65536)
        layout = detect_layout(log_file, strip_ansi(head))
        if layout not in (Layout.TIMESTAMPS, Layout.PLAIN):
            return None
        timed = writes_times(layout, head, default)
        size = os.fstat(handle.fileno()).st_size
        fd = handle.fileno()
        cuts = {_line_start(fd, size * k // workers, layout) for k in range(1, workers)}
        edges = [0, *sorted(cut for cut in cuts if 0 < cut < size), size]
        return [
            FilePart(
                start,
                stop,
                layout,
                timed,
                _time_before(fd, start, layout, timed, default),
            )
            for start, stop in pairwise(edges)
        ]


def scan_parts(
    jobs: Sequence[PartJob], collector: CallCollector
) -> dict[StreamKey, StreamCounts]:
    """Scan the parts in worker processes; merge their counts into `collector`."""
    context = multiprocessing.get_context("fork")
    with context.Pool(len(jobs)) as pool:
        results = pool.map(_scan_part, jobs)
    streams: dict[StreamKey, StreamCounts] = {}
    for result in results:
        collector.counter.absorb(result.counter)
        collector.top.absorb(result.top)
        for key, counts in result.streams.items():
            merge_counts(streams.setdefault(key, StreamCounts()), counts)
    logger.info("Read %s in %d parts", jobs[0].log_file.path, len(jobs))
    return streams


def merge_counts(into: StreamCounts, counts: StreamCounts) -> None:
    """Add one stream's counters read elsewhere (another file, another part)."""
    into.lines_read += counts.lines_read
    into.lines_in_window += counts.lines_in_window
    into.kept_without_time += counts.kept_without_time
    for moment in (counts.earliest, counts.latest):
        if moment is not None:
            into.saw(moment)


def _scan_part(job: PartJob) -> PartResult:
    collector = CallCollector(Matcher(job.include, job.rule), job.top_n)
    scanner = LogScanner(
        job.log_file,
        anchor=job.anchor,
        bounds=job.bounds,
        sink=collector,
        block_size=job.block_size,
        part=job.part,
    )
    streams = scanner.run()
    return PartResult(streams, collector.counter, collector.top.export())


def _line_start(fd: int, offset: int, layout: Layout) -> int:
    """The first line start at or after `offset` that does not continue a split line."""
    position = offset
    while True:
        chunk = os.pread(fd, 1 << 16, position)
        newline = chunk.find(b"\n")
        if newline < 0:
            if not chunk:
                return position
            position += len(chunk)
            continue
        start = position + newline + 1
        if layout is not Layout.TIMESTAMPS or not _ends_fragment(fd, start):
            return start
        position = start


def _ends_fragment(fd: int, start: int) -> bool:
    """Whether the line before `start` is a 16 KiB fragment the next line continues."""
    size = SPLIT_BYTES + 64
    before = os.pread(fd, min(size, start), max(0, start - size))
    line = before[before.rfind(b"\n", 0, len(before) - 1) + 1 : -1]
    record = split_record(line, Layout.TIMESTAMPS, StreamKey(None, None))
    return record.partial


def _time_before(
    fd: int, start: int, layout: Layout, timed: bool, default: StreamKey
) -> datetime | None:
    """The time of the last timestamped line before `start` (None if none is near)."""
    if start == 0 or not timed:
        return None
    before = os.pread(fd, min(_LOOK_BACK, start), max(0, start - _LOOK_BACK))
    lines = before.split(b"\n")[:-1]
    if start > _LOOK_BACK:
        lines = lines[1:]  # the first piece may be the end of a longer line
    for line in reversed(lines):
        moment = own_time(split_record(line, layout, default), timed)
        if moment is not None:
            return moment
    return None


def available_cpus() -> int:
    """How many CPUs this process may run on: a sensible number of workers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1

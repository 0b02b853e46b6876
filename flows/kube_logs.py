"""Stream one container's log to a file, resuming where the stream dropped."""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from kubernetes_asyncio.client import CoreV1Api

from flows.errors import KubernetesError
from flows.kube_client import permission_denied, status_message

logger = logging.getLogger(__name__)

# Extra seconds asked for before the window start (or the resume point), so that a
# node clock a little ahead of ours loses no line; the filter cuts at the window.
SINCE_MARGIN_SECONDS = 60
_RESUME_DELAY_SECONDS = 0.25
_RESUMABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

_CHUNK_BYTES = 64 * 1024

# The timestamp the kubelet puts before each line with `timestamps=true`
# (RFC 3339 with nanoseconds, e.g. `2026-03-10T05:12:45.100250000Z`).
_STAMP = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)"
    rb"(?:\.(?P<fraction>\d{1,9}))?(?P<zone>Z|[+-]\d\d:\d\d)"
)


@dataclass(frozen=True)
class LogRead:
    """One log stream to download: a container instance of a pod, and its file."""

    pod: str
    container: str
    previous: bool
    path: Path

    def __str__(self) -> str:
        instance = " (previous instance)" if self.previous else ""
        return f"pod {self.pod} container {self.container}{instance}"


@dataclass(frozen=True)
class LogOutcome:
    """Whether a file was written for the stream, and what went wrong if not all."""

    written: bool
    warnings: list[str]


class LogStreamer:
    """Streams container logs to files, resuming a stream that drops mid-read."""

    def __init__(
        self,
        *,
        core: CoreV1Api,
        namespace: str,
        since: datetime,
        clock: Callable[[], datetime],
        read_timeout: float,
        max_resumes: int,
    ):
        self.core = core
        self.namespace = namespace
        self.since = since
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(sock_connect=30, sock_read=read_timeout)
        self.max_resumes = max_resumes

    async def read(self, read: LogRead) -> LogOutcome:
        """Download one stream with timestamps, from the window start on.

        Raises:
            PermissionDenied: 403 on pods/log.
            KubernetesError: the stream kept dropping, or an unexpected status.
        """
        with ExitStack() as files:
            spool: LineSpool | None = None
            resumes = 0
            while True:
                resume_from = spool.last_time() if spool else None
                since_seconds = _since_seconds(self.clock(), resume_from or self.since)
                what = f"GET log of {read} sinceSeconds={since_seconds}"
                if spool is None:
                    spool = LineSpool(files.enter_context(read.path.open("wb")))
                else:
                    spool.begin_resume()
                lines_before, bytes_before = spool.lines, spool.bytes
                try:
                    status, message = await self._download(read, since_seconds, spool)
                except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                    got = spool.lines - lines_before
                    logger.info("%s: interrupted after %d line(s): %r", what, got, exc)
                    resumes = await self._resume(read, resumes, spool, exc)
                    continue

                logger.info(
                    "%s: HTTP %d, %d line(s), %d byte(s)%s",
                    what,
                    status,
                    spool.lines - lines_before,
                    spool.bytes - bytes_before,
                    f": {message}" if message else "",
                )
                if status == 200:
                    return LogOutcome(written=True, warnings=[])
                if status in _RESUMABLE_STATUSES:
                    error = KubernetesError(
                        f"{what} failed with HTTP {status}: {message}",
                        namespace=self.namespace,
                        status=status,
                    )
                    resumes = await self._resume(read, resumes, spool, error)
                    continue
                outcome = self._refused(read, status, message, spool)
                if not outcome.written:
                    files.close()
                    read.path.unlink(missing_ok=True)
                return outcome

    async def _download(
        self, read: LogRead, since_seconds: int, spool: LineSpool
    ) -> tuple[int, str]:
        # Not prefect_kubernetes.pods.read_namespaced_pod_log: it buffers the
        # whole log, or follows forever. Without preloading, the raw aiohttp
        # response comes back and its body is read chunk by chunk.
        response: Any = await self.core.read_namespaced_pod_log(
            name=read.pod,
            namespace=self.namespace,
            container=read.container,
            previous=read.previous,
            timestamps=True,
            since_seconds=since_seconds,
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        try:
            if response.status != 200:
                return response.status, status_message(await response.read())
            await spool.copy(response.content)
            spool.finish()
            return 200, ""
        finally:
            response.release()

    async def _resume(
        self, read: LogRead, resumes: int, spool: LineSpool, cause: BaseException
    ) -> int:
        resumes += 1
        if resumes > self.max_resumes:
            raise KubernetesError(
                f"the log stream of {read} in namespace {self.namespace!r} failed "
                f"{resumes} times ({cause!r}); the Kubernetes API or the node's "
                "kubelet is unstable, try again later",
                namespace=self.namespace,
                status=getattr(cause, "status", None),
            ) from cause
        since = spool.last_time()
        logger.warning(
            "Log stream of %s dropped (%r); resuming from %s (%d/%d)",
            read,
            cause,
            since.isoformat() if since else "the window start",
            resumes,
            self.max_resumes,
        )
        await asyncio.sleep(_RESUME_DELAY_SECONDS * resumes)
        return resumes

    def _refused(
        self, read: LogRead, status: int, message: str, spool: LineSpool
    ) -> LogOutcome:
        if status == 403:
            raise permission_denied(
                verb="get",
                resource="pods/log",
                namespace=self.namespace,
                message=message,
            )
        kept = f"; kept the {spool.lines} line(s) read before" if spool.lines else ""
        if status == 404:
            warning = f"{read} is gone (404: {message}): skipped{kept}"
        elif status == 400 and read.previous:
            warning = (
                f"no previous instance of {read.pod}/{read.container} to read "
                f"(400: {message}); lines from before its restart are missing"
            )
        elif status == 400:
            warning = f"{read} cannot be read (400: {message}): skipped{kept}"
        else:
            raise KubernetesError(
                f"reading the log of {read} in namespace {self.namespace!r} failed "
                f"with HTTP {status}: {message}",
                namespace=self.namespace,
                status=status,
            )
        logger.warning("%s", warning)
        return LogOutcome(written=spool.lines > 0, warnings=[warning])


class LineSpool:
    """Writes a log stream's complete lines to a file as they arrive.

    After a stream drops, the resumed request starts at a whole second at or before
    the last line written, so it delivers some lines again: those up to and
    including the last line written (same timestamp, counted) are skipped. The line
    cut at the break is discarded and comes again in full.
    """

    def __init__(self, file: BinaryIO):
        self.lines = 0
        self.bytes = 0
        self._file = file
        self._partial = b""
        self._last_stamp: bytes | None = None
        self._at_last_stamp = 0
        self._skip_until: int | None = None
        self._skip_left = 0

    def last_time(self) -> datetime | None:
        """The timestamp of the last line written, to the second (rounded down)."""
        nanos = _stamp_nanos(self._last_stamp) if self._last_stamp else None
        return None if nanos is None else datetime.fromtimestamp(nanos // 10**9, UTC)

    def begin_resume(self) -> None:
        """Prepare for the resumed stream: drop the cut line, skip what was written."""
        self._partial = b""
        if self._last_stamp is not None:
            self._skip_until = _stamp_nanos(self._last_stamp)
            self._skip_left = self._at_last_stamp

    async def copy(self, content: aiohttp.StreamReader) -> None:
        """Write the response body chunk by chunk; never the whole log in memory."""
        async for chunk in content.iter_chunked(_CHUNK_BYTES):
            self.feed(chunk)

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk
        end = data.rfind(b"\n") + 1
        self._partial = data[end:]
        if end:
            self._write(data[:end])

    def finish(self) -> None:
        """At the normal end of a stream, keep a last line that has no newline."""
        if self._partial:
            self._write(self._partial)
            self._partial = b""

    def _write(self, block: bytes) -> None:
        if self._skip_until is not None:
            block = self._drop_redelivered(block)
            if not block:
                return
        self._remember_last_stamp(block)
        self._file.write(block)
        self.lines += block.count(b"\n")
        self.bytes += len(block)

    def _drop_redelivered(self, block: bytes) -> bytes:
        lines = block.split(b"\n")
        for index, line in enumerate(lines):
            if not line and index == len(lines) - 1:
                break
            nanos = _stamp_nanos(_stamp_of(line))
            if nanos is not None and self._skip_until is not None:
                if nanos < self._skip_until:
                    continue
                if nanos == self._skip_until and self._skip_left > 0:
                    self._skip_left -= 1
                    continue
            self._skip_until = None
            return b"\n".join(lines[index:])
        return b""

    def _remember_last_stamp(self, block: bytes) -> None:
        lines = block.rstrip(b"\n").split(b"\n")
        stamp = _stamp_of(lines[-1])
        same = 0
        for line in reversed(lines):
            if _stamp_of(line) != stamp:
                break
            same += 1
        if same == len(lines) and stamp == self._last_stamp:
            self._at_last_stamp += same
        else:
            self._last_stamp, self._at_last_stamp = stamp, same


def _stamp_of(line: bytes) -> bytes:
    return line.partition(b" ")[0]


def _stamp_nanos(stamp: bytes) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp the kubelet prefixes."""
    found = _STAMP.fullmatch(stamp)
    if not found:
        return None
    year, month, day, hour, minute, second = (int(found[i]) for i in range(1, 7))
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    fraction = (found["fraction"] or b"").ljust(9, b"0")
    zone = found["zone"]
    if zone != b"Z":
        sign = -1 if zone[:1] == b"-" else 1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 10**9 + int(fraction)


def _since_seconds(now: datetime, moment: datetime) -> int:
    return max(1, math.ceil((now - moment).total_seconds()) + SINCE_MARGIN_SECONDS)

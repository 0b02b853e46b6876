"""The records the scrape and filter steps hand on: log files, coverage, calls, counts.

They are pydantic models so that Prefect can persist them as task results and the
CLI can print them as JSON.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

LogFormat = Literal["auto", "plain", "timestamps", "prefix", "cri"]


class LogFile(BaseModel):
    """One log to read: a file written by the cluster scrape, a user's file, or stdin.

    `pod` and `container` are known for the cluster source; for user files they come
    from a `kubectl logs --prefix` prefix when there is one.
    """

    path: Path
    pod: str | None = None
    container: str | None = None
    previous: bool = Field(
        default=False, description="The previous instance of a restarted container."
    )
    format: LogFormat = "auto"


class ContainerCoverage(BaseModel):
    """How much of the window one pod/container's log actually covers."""

    pod: str | None
    container: str | None
    previous: bool = False
    restarts: int = 0
    lines_read: int = 0
    lines_in_window: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    complete: bool = Field(
        default=True,
        description="False when the log begins after the window start "
        "(rotation, a new pod): the analysis then covers less than the window.",
    )


class ScrapeResult(BaseModel):
    """What the scrape step read: where the lines are, and what could not be read."""

    source: Literal["cluster", "files"]
    files: list[LogFile]
    namespace: str | None = None
    deployment: str | None = None
    label_selector: str | None = None
    pods: list[str] = Field(default_factory=list)
    restarts: dict[str, int] = Field(
        default_factory=dict, description="Restart count by `pod/container`."
    )
    warnings: list[str] = Field(default_factory=list)


class CallRecord(BaseModel):
    """A matched log line, parsed into an HTTP call when its format is known."""

    timestamp: datetime | None = None
    pod: str | None = None
    container: str | None = None
    line: str = Field(
        description="The line as matched: ANSI-free, JSON message "
        "extracted, secrets redacted, truncated with a marker if long."
    )
    method: str | None = None
    scheme: str | None = None
    host: str | None = None
    path: str | None = None
    http_version: str | None = None
    status: int | None = None
    reason: str | None = None
    latency_ms: float | None = None
    repeat: int = Field(
        default=1, description="Identical calls collapsed into this one."
    )


class CallStatistics(BaseModel):
    """Counts over every matched call in the window, not only the selected ones."""

    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)
    by_status_class: dict[str, int] = Field(default_factory=dict)
    by_host: dict[str, int] = Field(default_factory=dict)
    by_path: dict[str, int] = Field(default_factory=dict)
    by_pod: dict[str, int] = Field(default_factory=dict)
    by_hour: dict[str, int] = Field(default_factory=dict)
    errors: int = Field(default=0, description="Calls with status 4xx or 5xx.")
    error_rate: float = 0.0


class FilterResult(BaseModel):
    """The filter step's answer: counts, coverage, statistics and the top N calls."""

    rule: str
    include: list[str]
    lines_read: int
    lines_in_window: int
    matches: int
    selected: list[CallRecord]
    statistics: CallStatistics
    coverage: list[ContainerCoverage] = Field(default_factory=list)
    first_timestamp: datetime | None = Field(
        default=None, description="Earliest timestamp seen in any line read."
    )
    last_timestamp: datetime | None = None
    warnings: list[str] = Field(default_factory=list)

"""The time window a run analyses, anchored on the run's scheduled start time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field


class Window(BaseModel):
    """The half-open interval [start, end) of log time a run analyses.

    `end` is the scheduled start of the run, not the wall clock, so a late run or
    a rerun of the same slot analyses the same lines.
    """

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    scheduled: datetime | None = Field(
        default=None, description="The run's scheduled start time (the slot)."
    )
    actual_start: datetime | None = Field(
        default=None, description="When the run really started."
    )

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def slot(self) -> str:
        """A stable name: `2026-03-09T13:00:00Z/2026-03-10T13:00:00Z`."""
        return f"{iso_utc(self.start)}/{iso_utc(self.end)}"


def window_ending_at(
    end: datetime, hours: float, *, actual_start: datetime | None = None
) -> Window:
    """The window of `hours` ending at the scheduled time `end`.

    Raises:
        ValueError: if `hours` is not positive.
    """
    if hours <= 0:
        raise ValueError(f"window_hours must be positive, got {hours}")
    end = _utc(end)
    return Window(
        start=end - timedelta(hours=hours),
        end=end,
        scheduled=end,
        actual_start=_utc(actual_start) if actual_start else None,
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """`2026-03-10T13:00:00Z`: the one way times are written in requests and reports."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")

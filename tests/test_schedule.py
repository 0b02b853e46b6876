"""The weekly schedule in prefect.yaml, expanded by Prefect's own schedule code."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.client.schemas.schedules import CronSchedule as ClientCronSchedule
from prefect.server.schemas.schedules import CronSchedule as ServerCronSchedule

PREFECT_YAML = Path(__file__).resolve().parent.parent / "prefect.yaml"
NEW_YORK = ZoneInfo("America/New_York")


def declared_schedule() -> ClientCronSchedule:
    """The weekly deployment's only schedule, as `prefect deploy` would build it."""
    config = yaml.safe_load(PREFECT_YAML.read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "weekly"]
    (schedule,) = deployment["schedules"]
    assert schedule.get("active", True) is True
    return ClientCronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])


def runs_between(start: datetime, end: datetime) -> list[datetime]:
    """Run times from `start` (inclusive) to `end`, as Prefect schedules them."""
    server_schedule = ServerCronSchedule.model_validate(
        declared_schedule().model_dump()
    )
    dates = asyncio.run(server_schedule.get_dates(start=start, end=end))
    # Plain UTC datetimes, so differences are elapsed time, not wall-clock time.
    utc = [datetime.fromtimestamp(d.timestamp(), UTC) for d in dates]
    return [d for d in utc if d < end]


@pytest.fixture(scope="module")
def runs_2027() -> list[datetime]:
    return runs_between(
        datetime(2027, 1, 1, tzinfo=NEW_YORK), datetime(2028, 1, 1, tzinfo=NEW_YORK)
    )


def test_schedule_is_declared_in_new_york_time() -> None:
    schedule = declared_schedule()

    assert schedule.cron == "0 9 * * 2"
    assert schedule.timezone == "America/New_York"


def test_every_tuesday_of_2027_runs_once_at_nine_in_new_york(
    runs_2027: list[datetime],
) -> None:
    local = [run.astimezone(NEW_YORK) for run in runs_2027]
    tuesdays = [
        date(2027, 1, 5) + timedelta(weeks=week)
        for week in range(53)
        if (date(2027, 1, 5) + timedelta(weeks=week)).year == 2027
    ]

    assert len(runs_2027) == 52
    assert [run.date() for run in local] == tuesdays
    assert {(run.hour, run.minute, run.second) for run in local} == {(9, 0, 0)}


def test_runs_are_at_14_utc_in_winter_and_13_utc_in_summer(
    runs_2027: list[datetime],
) -> None:
    utc_hour = {run.date(): run.hour for run in runs_2027}

    # Eastern time: EST (UTC-5) until 2027-03-14, EDT (UTC-4) until 2027-11-07.
    assert utc_hour[date(2027, 1, 5)] == 14
    assert utc_hour[date(2027, 3, 9)] == 14
    assert utc_hour[date(2027, 3, 16)] == 13
    assert utc_hour[date(2027, 7, 6)] == 13
    assert utc_hour[date(2027, 11, 2)] == 13
    assert utc_hour[date(2027, 11, 9)] == 14
    assert utc_hour[date(2027, 12, 28)] == 14
    assert sorted(set(utc_hour.values())) == [13, 14]


def test_no_week_is_skipped_or_doubled_across_the_clock_changes(
    runs_2027: list[datetime],
) -> None:
    gaps = [later - earlier for earlier, later in pairwise(runs_2027)]
    short = timedelta(weeks=1) - timedelta(hours=1)
    long = timedelta(weeks=1) + timedelta(hours=1)

    # In UTC the week is an hour short once (spring forward) and an hour long once
    # (fall back); every other gap is exactly seven days.
    assert sorted(set(gaps)) == [short, timedelta(weeks=1), long]
    assert gaps.count(short) == 1
    assert gaps.count(long) == 1
    spring = runs_2027[gaps.index(short) + 1]
    fall = runs_2027[gaps.index(long) + 1]
    assert spring == datetime(2027, 3, 16, 13, 0, tzinfo=UTC)
    assert fall == datetime(2027, 11, 9, 14, 0, tzinfo=UTC)


def test_next_runs_around_spring_forward() -> None:
    runs = runs_between(
        datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 3, 31, tzinfo=UTC)
    )

    assert [run.astimezone(UTC) for run in runs] == [
        datetime(2027, 3, 2, 14, 0, tzinfo=UTC),
        datetime(2027, 3, 9, 14, 0, tzinfo=UTC),
        datetime(2027, 3, 16, 13, 0, tzinfo=UTC),
        datetime(2027, 3, 23, 13, 0, tzinfo=UTC),
        datetime(2027, 3, 30, 13, 0, tzinfo=UTC),
    ]


def test_next_runs_around_fall_back() -> None:
    runs = runs_between(
        datetime(2027, 10, 25, tzinfo=UTC), datetime(2027, 11, 20, tzinfo=UTC)
    )

    assert [run.astimezone(UTC) for run in runs] == [
        datetime(2027, 10, 26, 13, 0, tzinfo=UTC),
        datetime(2027, 11, 2, 13, 0, tzinfo=UTC),
        datetime(2027, 11, 9, 14, 0, tzinfo=UTC),
        datetime(2027, 11, 16, 14, 0, tzinfo=UTC),
    ]

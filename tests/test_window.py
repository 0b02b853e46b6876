from datetime import UTC, datetime, timedelta, timezone

import pytest

from flows.window import Window, iso_utc, window_ending_at

SLOT = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)


def test_window_ends_at_the_scheduled_time_not_the_wall_clock():
    late_start = SLOT + timedelta(hours=3, minutes=7)

    window = window_ending_at(SLOT, 24, actual_start=late_start)

    assert window.start == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    assert window.end == SLOT
    assert window.scheduled == SLOT
    assert window.actual_start == late_start
    assert window.hours == 24


def test_a_rerun_of_the_same_slot_has_the_same_slot_name():
    first = window_ending_at(SLOT, 24, actual_start=SLOT)
    rerun = window_ending_at(SLOT, 24, actual_start=SLOT + timedelta(days=2))

    assert first.slot() == rerun.slot() == "2026-03-09T13:00:00Z/2026-03-10T13:00:00Z"


def test_new_york_time_is_converted_to_utc():
    new_york_edt = timezone(timedelta(hours=-4))

    window = window_ending_at(datetime(2026, 3, 10, 9, 0, tzinfo=new_york_edt), 24)

    assert window.end == SLOT
    assert iso_utc(window.end) == "2026-03-10T13:00:00Z"


def test_window_is_half_open():
    window = Window(start=SLOT - timedelta(hours=1), end=SLOT)

    assert window.contains(SLOT - timedelta(hours=1))
    assert not window.contains(SLOT)


def test_window_length_must_be_positive():
    with pytest.raises(ValueError, match="window_hours must be positive, got 0"):
        window_ending_at(SLOT, 0)

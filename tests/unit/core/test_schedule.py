"""Tests for awayd.core.schedule: whole local days, weekly windows, DST edges and next_change."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from awayd.config.model import WeeklyWindow, When
from awayd.core.schedule import State, next_change, state

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
MINUTE = timedelta(minutes=1)
EVERY_DAY = frozenset(range(7))
MON_FRI = frozenset(range(5))
WEEKEND = frozenset({5, 6})


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    """A local wall-clock time, returned as the UTC instant that the daemon would pass."""
    return datetime(*args, tzinfo=tz, fold=fold).astimezone(UTC)


def utc(value: datetime | None) -> datetime | None:
    """next_change answers in the local zone; compare instants in UTC (PEP 495: datetimes in
    a repeated hour never equal another zone's, and same-zone subtraction is wall-clock)."""
    return value.astimezone(UTC) if value is not None else None


def weekly(*windows: WeeklyWindow) -> When:
    return When(weekly=windows)


def test_no_schedule_is_always_active() -> None:
    assert state(None, datetime(2026, 1, 1, tzinfo=UTC), PARIS) is State.ACTIVE
    assert next_change(None, datetime(2026, 1, 1, tzinfo=UTC), PARIS, to_active=False) is None


def test_whole_days_are_inclusive_local_days() -> None:
    when = When(date(2026, 12, 20), date(2027, 1, 4))
    assert state(when, local(PARIS, 2026, 12, 19, 23, 59), PARIS) is State.BEFORE
    assert state(when, local(PARIS, 2026, 12, 20, 0, 0), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2027, 1, 4, 23, 59), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2027, 1, 5, 0, 0), PARIS) is State.AFTER


def test_one_day_absence_covers_that_whole_local_day_in_paris() -> None:
    when = When(date(2026, 6, 15), date(2026, 6, 15))
    start = local(PARIS, 2026, 6, 15, 0, 0)
    end = local(PARIS, 2026, 6, 16, 0, 0)
    assert start == datetime(2026, 6, 14, 22, 0, tzinfo=UTC)  # CEST: the day starts the eve in UTC
    assert state(when, start - MINUTE, PARIS) is State.BEFORE
    assert state(when, start, PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 6, 15, 12, 0), PARIS) is State.ACTIVE
    assert state(when, end - MINUTE, PARIS) is State.ACTIVE
    assert state(when, end, PARIS) is State.AFTER


def test_the_same_instant_can_be_inside_in_one_zone_and_outside_in_another() -> None:
    when = When(date(2026, 6, 15), date(2026, 6, 15))
    instant = datetime(2026, 6, 15, 23, 30, tzinfo=UTC)  # 16 June 01:30 in Paris
    assert state(when, instant, ZoneInfo("UTC")) is State.ACTIVE
    assert state(when, instant, PARIS) is State.AFTER


def test_datetimes_with_zones_are_exact_instants() -> None:
    cet = timezone(timedelta(hours=1))
    when = When(datetime(2026, 12, 20, 9, 0, tzinfo=cet), datetime(2026, 12, 21, 18, 0, tzinfo=cet))
    assert state(when, datetime(2026, 12, 20, 7, 59, tzinfo=UTC), PARIS) is State.BEFORE
    assert state(when, datetime(2026, 12, 20, 8, 0, tzinfo=UTC), PARIS) is State.ACTIVE
    assert state(when, datetime(2026, 12, 21, 16, 59, tzinfo=UTC), PARIS) is State.ACTIVE
    assert state(when, datetime(2026, 12, 21, 17, 0, tzinfo=UTC), PARIS) is State.AFTER


def test_open_ended_ranges() -> None:
    since = When(start=date(2026, 12, 20))
    until = When(until=date(2026, 12, 20))
    assert state(since, datetime(2030, 1, 1, tzinfo=UTC), PARIS) is State.ACTIVE
    assert state(until, datetime(2000, 1, 1, tzinfo=UTC), PARIS) is State.ACTIVE
    assert state(until, local(PARIS, 2026, 12, 21, 0, 0), PARIS) is State.AFTER


@pytest.mark.parametrize(
    ("tz", "day"),
    [(PARIS, date(2026, 3, 29)), (PARIS, date(2026, 10, 25)),
     (NEW_YORK, date(2026, 3, 8)), (NEW_YORK, date(2026, 11, 1))],
)
def test_absence_ending_on_a_dst_day_ends_at_local_midnight(tz: ZoneInfo, day: date) -> None:
    when = When(day - timedelta(days=3), day)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    assert state(when, end - MINUTE, tz) is State.ACTIVE
    assert state(when, end, tz) is State.AFTER
    now = datetime.combine(day, time(12), tzinfo=tz).astimezone(UTC)
    change = next_change(when, now, tz, to_active=False)
    assert change is not None
    assert (change.date(), change.time()) == (day + timedelta(days=1), time(0))
    assert utc(change) == end


def test_dst_day_lasts_23_hours_in_spring_and_25_in_autumn() -> None:
    spring = When(date(2026, 3, 29), date(2026, 3, 29))
    autumn = When(date(2026, 10, 25), date(2026, 10, 25))
    for when, hours in ((spring, 23), (autumn, 25)):
        start = utc(next_change(when, datetime(2026, 1, 1, tzinfo=UTC), PARIS, to_active=True))
        assert start is not None
        end = utc(next_change(when, start, PARIS, to_active=False))
        assert end is not None
        assert end - start == timedelta(hours=hours)


def test_window_across_spring_forward_in_paris() -> None:
    """01:30-03:30 on 29 March 2026: 02:00-03:00 does not exist, the window lasts one hour."""
    when = weekly(WeeklyWindow(EVERY_DAY, ((time(1, 30), time(3, 30)),)))
    assert state(when, local(PARIS, 2026, 3, 29, 1, 29), PARIS) is State.CLOSED
    assert state(when, local(PARIS, 2026, 3, 29, 1, 59), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 3, 29, 3, 0), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 3, 29, 3, 30), PARIS) is State.CLOSED
    midnight = local(PARIS, 2026, 3, 29, 0, 0)
    opens = utc(next_change(when, midnight, PARIS, to_active=True))
    closes = utc(next_change(when, midnight, PARIS, to_active=False))
    assert opens == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    assert closes == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert closes - opens == timedelta(hours=1)


def test_window_across_fall_back_in_paris_covers_both_repeated_hours() -> None:
    """01:30-03:30 on 25 October 2026: 02:00-03:00 happens twice, the window lasts three hours."""
    when = weekly(WeeklyWindow(EVERY_DAY, ((time(1, 30), time(3, 30)),)))
    assert state(when, local(PARIS, 2026, 10, 25, 2, 30, fold=0), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 10, 25, 2, 30, fold=1), PARIS) is State.ACTIVE
    midnight = local(PARIS, 2026, 10, 25, 0, 0)
    opens = utc(next_change(when, midnight, PARIS, to_active=True))
    closes = utc(next_change(when, midnight, PARIS, to_active=False))
    assert opens == datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    assert closes == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)
    assert closes - opens == timedelta(hours=3)


def test_window_across_spring_forward_in_new_york() -> None:
    when = weekly(WeeklyWindow(EVERY_DAY, ((time(1, 30), time(3, 30)),)))
    midnight = local(NEW_YORK, 2026, 3, 8, 0, 0)
    opens = utc(next_change(when, midnight, NEW_YORK, to_active=True))
    closes = utc(next_change(when, midnight, NEW_YORK, to_active=False))
    assert opens == datetime(2026, 3, 8, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert closes == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert state(when, local(NEW_YORK, 2026, 3, 8, 3, 15), NEW_YORK) is State.ACTIVE


def test_window_across_fall_back_in_new_york() -> None:
    when = weekly(WeeklyWindow(EVERY_DAY, ((time(1, 30), time(3, 30)),)))
    midnight = local(NEW_YORK, 2026, 11, 1, 0, 0)
    opens = utc(next_change(when, midnight, NEW_YORK, to_active=True))
    closes = utc(next_change(when, midnight, NEW_YORK, to_active=False))
    assert opens == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    assert closes == datetime(2026, 11, 1, 8, 30, tzinfo=UTC)  # 03:30 EST
    assert state(when, local(NEW_YORK, 2026, 11, 1, 1, 45, fold=1), NEW_YORK) is State.ACTIVE


def test_next_change_across_a_dst_change_keeps_local_office_hours() -> None:
    """Closed from Friday 18:00 CET; the office opens Monday 09:00, now CEST (07:00 UTC)."""
    when = weekly(WeeklyWindow(MON_FRI, ((time(9), time(18)),), outside=True),
                  WeeklyWindow(WEEKEND))
    friday_evening = local(PARIS, 2026, 3, 27, 19, 0)
    assert state(when, friday_evening, PARIS) is State.ACTIVE
    opening = next_change(when, friday_evening, PARIS, to_active=False)
    assert opening is not None
    assert utc(opening) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert opening.utcoffset() == timedelta(hours=2)
    assert opening.tzinfo == PARIS


def test_next_change_across_fall_back_in_new_york() -> None:
    when = weekly(WeeklyWindow(MON_FRI, ((time(9), time(17)),)))
    friday_evening = local(NEW_YORK, 2026, 10, 30, 18, 0)
    opening = utc(next_change(when, friday_evening, NEW_YORK, to_active=True))
    assert opening == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)  # 09:00 EST


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ((2026, 12, 21, 8, 59), State.ACTIVE),  # Monday before opening
        ((2026, 12, 21, 9, 0), State.CLOSED),  # Monday, office open
        ((2026, 12, 21, 17, 59), State.CLOSED),
        ((2026, 12, 21, 18, 0), State.ACTIVE),  # Monday evening
        ((2026, 12, 26, 12, 0), State.ACTIVE),  # Saturday
        ((2026, 12, 27, 23, 59), State.ACTIVE),  # Sunday night
    ],
)
def test_outside_office_hours_plus_weekend(wall: tuple[int, ...], expected: State) -> None:
    when = weekly(WeeklyWindow(MON_FRI, ((time(9), time(18)),), outside=True),
                  WeeklyWindow(WEEKEND))
    assert state(when, local(PARIS, *wall), PARIS) is expected


def test_outside_alone_does_not_cover_days_it_does_not_list() -> None:
    when = weekly(WeeklyWindow(MON_FRI, ((time(9), time(18)),), outside=True))
    assert state(when, local(PARIS, 2026, 12, 26, 12, 0), PARIS) is State.CLOSED


@pytest.mark.parametrize(
    ("wall", "expected"),
    [
        ((2026, 12, 25, 21, 59), State.CLOSED),  # Friday before the night shift
        ((2026, 12, 25, 22, 0), State.ACTIVE),  # Friday night
        ((2026, 12, 26, 5, 59), State.ACTIVE),  # Saturday morning: Friday's night
        ((2026, 12, 26, 6, 0), State.CLOSED),
        ((2026, 12, 26, 23, 0), State.CLOSED),  # Saturday night is not listed
        ((2026, 12, 25, 3, 0), State.CLOSED),  # Friday early: Thursday's night, not listed
    ],
)
def test_inside_window_crossing_midnight_belongs_to_the_listed_evening(
    wall: tuple[int, ...], expected: State
) -> None:
    when = weekly(WeeklyWindow(frozenset({4}), ((time(22), time(6)),)))
    assert state(when, local(PARIS, *wall), PARIS) is expected


def test_weekly_window_on_sat_and_sun_covers_the_whole_days() -> None:
    when = weekly(WeeklyWindow(WEEKEND))
    assert state(when, local(PARIS, 2026, 12, 25, 23, 59), PARIS) is State.CLOSED
    assert state(when, local(PARIS, 2026, 12, 26, 0, 0), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 12, 27, 23, 59), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 12, 28, 0, 0), PARIS) is State.CLOSED
    closes = utc(next_change(when, local(PARIS, 2026, 12, 26, 10, 0), PARIS, to_active=False))
    assert closes == local(PARIS, 2026, 12, 28, 0, 0)


def test_several_ranges_in_one_window() -> None:
    when = weekly(WeeklyWindow(MON_FRI, ((time(8), time(12)), (time(14), time(18)))))
    assert state(when, local(PARIS, 2026, 12, 21, 13, 0), PARIS) is State.CLOSED
    assert state(when, local(PARIS, 2026, 12, 21, 15, 0), PARIS) is State.ACTIVE
    opens = utc(next_change(when, local(PARIS, 2026, 12, 21, 13, 0), PARIS, to_active=True))
    assert opens == local(PARIS, 2026, 12, 21, 14, 0)


def test_dated_range_with_a_weekly_window_is_closed_outside_the_window() -> None:
    when = When(date(2026, 12, 20), date(2027, 1, 4),
                (WeeklyWindow(MON_FRI, ((time(9), time(18)),)),))
    assert state(when, local(PARIS, 2026, 12, 21, 10, 0), PARIS) is State.ACTIVE
    assert state(when, local(PARIS, 2026, 12, 21, 20, 0), PARIS) is State.CLOSED
    assert state(when, local(PARIS, 2027, 1, 5, 10, 0), PARIS) is State.AFTER
    assert state(when, local(PARIS, 2026, 12, 18, 10, 0), PARIS) is State.BEFORE


def test_next_change_is_none_when_the_range_is_over() -> None:
    when = When(date(2026, 1, 1), date(2026, 1, 2))
    assert next_change(when, datetime(2026, 6, 1, tzinfo=UTC), PARIS, to_active=True) is None


def test_next_change_finds_the_start_of_a_future_absence() -> None:
    when = When(date(2026, 12, 20), date(2027, 1, 4))
    start = utc(next_change(when, datetime(2026, 11, 25, tzinfo=UTC), PARIS, to_active=True))
    assert start == local(PARIS, 2026, 12, 20, 0, 0)
    end = utc(next_change(when, datetime(2026, 12, 22, tzinfo=UTC), PARIS, to_active=False))
    assert end == local(PARIS, 2027, 1, 5, 0, 0)

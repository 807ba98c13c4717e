"""When a rule is active: dated absences and weekly windows, in the mailbox's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from awayd.config.model import WeeklyWindow, When

HORIZON_DAYS = 400  # how far next_change looks ahead


class State(Enum):
    ACTIVE = "active"
    BEFORE = "before"  # the dated range has not begun
    AFTER = "after"  # the dated range is over
    CLOSED = "closed"  # inside the dated range, but no weekly window is open


def _start_instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time(0), tzinfo=tz)


def _end_instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the range: `until` dates are inclusive whole local days."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value + timedelta(days=1), time(0), tzinfo=tz)


def _in_window(window: WeeklyWindow, local: datetime) -> bool:
    day = local.weekday()
    clock = local.time().replace(tzinfo=None)
    if not window.ranges:
        return day in window.days
    inside = False
    for start, end in window.ranges:
        if start < end:
            hit = day in window.days and start <= clock < end
        else:  # crosses midnight: the evening belongs to the listed day
            yesterday = (day - 1) % 7
            hit = (day in window.days and clock >= start) or (yesterday in window.days and clock < end)
        inside = inside or hit
    if window.outside:
        return day in window.days and not inside
    return inside


def state(when: When | None, now: datetime, tz: ZoneInfo) -> State:
    """Whether the schedule is active at `now` (aware), judged in time zone `tz`."""
    if when is None:
        return State.ACTIVE
    if when.start is not None and now < _start_instant(when.start, tz):
        return State.BEFORE
    if when.until is not None and now >= _end_instant(when.until, tz):
        return State.AFTER
    if not when.weekly:
        return State.ACTIVE
    local = now.astimezone(tz)
    if any(_in_window(w, local) for w in when.weekly):
        return State.ACTIVE
    return State.CLOSED


def _boundaries(when: When, now: datetime, tz: ZoneInfo) -> list[datetime]:
    """Candidate instants after `now` where the state may change, in order."""
    out: list[datetime] = []
    for value, end in ((when.start, False), (when.until, True)):
        if value is not None:
            out.append(_end_instant(value, tz) if end else _start_instant(value, tz))
    if when.weekly:
        local_day = now.astimezone(tz).date()
        edges: set[time] = {time(0)}
        for w in when.weekly:
            for start, stop in w.ranges:
                edges.update((start, stop))
        for offset in range(HORIZON_DAYS):
            day = local_day + timedelta(days=offset)
            out.extend(datetime.combine(day, edge, tzinfo=tz) for edge in edges)
    return sorted(t for t in out if t > now)


def next_change(when: When | None, now: datetime, tz: ZoneInfo, *, to_active: bool) -> datetime | None:
    """The next instant the schedule becomes active (or inactive), None if never within reach."""
    if when is None:
        return None
    for instant in _boundaries(when, now, tz):
        # normalise through UTC so nonexistent local times (DST gaps) land on real instants
        real = instant.astimezone(ZoneInfo("UTC"))
        if (state(when, real, tz) is State.ACTIVE) == to_active:
            return real.astimezone(tz)
    return None

"""Typed readers for YAML values that collect every problem with its path instead of raising."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

T = TypeVar("T")
U = TypeVar("U")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_LANG = re.compile(r"^[a-z]{2,3}$")
MISSING = object()


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Problems:
    """Every problem found in one config source, each as `file: path: expected ..., found ...`."""

    source: str
    items: list[str] = field(default_factory=list)
    #: The YAML path of each item, for located().
    paths: list[str] = field(default_factory=list)

    def add(self, path: str, expected: str, found: object = MISSING, hint: str = "") -> None:
        what = "nothing" if found is MISSING else _show(found)
        self.items.append(f"{self.source}: {path}: expected {expected}, found {what}"
                          + (f"; {hint}" if hint else ""))
        self.paths.append(path)

    def note(self, path: str, message: str) -> None:
        self.items.append(f"{self.source}: {path}: {message}")
        self.paths.append(path)

    def located(self, marks: Mapping[str, tuple[int, int]]) -> list[str]:
        """Every item with the line and column of its path (or of its nearest parent), in the
        order of the file."""
        found = [(position(marks, path), item) for item, path in zip(self.items, self.paths,
                                                                     strict=True)]
        found.sort(key=lambda pair: pair[0] or (0, 0))
        return [item + (f" (line {at[0]}, column {at[1]})" if at else "") for at, item in found]


def position(marks: Mapping[str, tuple[int, int]], path: str) -> tuple[int, int] | None:
    """(line, column) of `path` in the YAML, else of the closest enclosing node; else None."""
    while path:
        if path in marks:
            return marks[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


class Node:
    """A mapping from the YAML document with its path; reads typed fields, reports problems."""

    def __init__(self, data: Mapping[str, object], path: str, problems: Problems) -> None:
        self.data = data
        self.path = path
        self.problems = problems

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def reject_unknown(self, allowed: set[str] | frozenset[str]) -> None:
        for key in self.data:
            if key not in allowed:
                options = ", ".join(sorted(allowed))
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                self.problems.add(self.sub(str(key)), f"one of the known keys ({options})",
                                  f"unknown key {key!r}",
                                  hint=f"did you mean {close[0]!r}?" if close else "")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> object:
        return self.data.get(key)

    def get(self, key: str, parse: Callable[[object], T], expected: str, default: U) -> T | U:
        value = self.data.get(key)
        if value is None:
            return default
        try:
            return parse(value)
        except (ValueError, TypeError, KeyError):
            self.problems.add(self.sub(key), expected, value)
            return default

    def require(self, key: str, parse: Callable[[object], T], expected: str) -> T | None:
        if self.data.get(key) is None:
            self.problems.add(self.sub(key), expected)
            return None
        value = self.data[key]
        try:
            return parse(value)
        except (ValueError, TypeError, KeyError):
            self.problems.add(self.sub(key), expected, value)
            return None

    def child(self, key: str, *, required: bool = False) -> Node | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.problems.add(self.sub(key), "a mapping")
            return None
        if not isinstance(value, Mapping):
            self.problems.add(self.sub(key), "a mapping", value)
            return None
        return Node(value, self.sub(key), self.problems)

    def children(self, key: str) -> Iterator[Node]:
        value = self.data.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.problems.add(self.sub(key), "a list", value)
            return
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                yield Node(item, f"{self.sub(key)}[{i}]", self.problems)
            else:
                self.problems.add(f"{self.sub(key)}[{i}]", "a mapping", item)


def as_str(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError
    text = str(value)
    if not text.strip():
        raise ValueError
    return text


def as_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def as_port(value: object) -> int:
    port = as_int(value)
    if not 0 < port < 65536:
        raise ValueError
    return port


def as_positive_int(value: object) -> int:
    number = as_int(value)
    if number < 1:
        raise ValueError
    return number


def as_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def as_str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise TypeError
    return tuple(as_str(v) for v in value)


def as_duration(value: object) -> timedelta:
    """`7d`, `60s`, `0.1s`, `24h`, `30m`, `2w`, `500ms`, or a number of seconds; 0 allowed."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise TypeError
    m = _DURATION.match(value)
    if not m:
        raise ValueError
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def as_timezone(value: object) -> ZoneInfo:
    try:
        return ZoneInfo(as_str(value))
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError from err


def as_language(value: object) -> str:
    text = as_str(value).lower()
    if not _LANG.match(text):
        raise ValueError
    return text


def as_address(value: object) -> str:
    """A plain addr-spec, lowercased: no display name, one @, no spaces or line breaks."""
    text = as_str(value).strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or re.search(r"[\s<>(),;:\"]", text):
        raise ValueError
    return text.lower()


def as_day_set(value: object) -> frozenset[int]:
    """`mon-fri`, `sat`, or a list of those."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise TypeError
    days: set[int] = set()
    for item in items:
        text = as_str(item).strip().lower()
        first, _, last = text.partition("-")
        a = _day_index(first)
        b = _day_index(last) if last else a
        span = (b - a) % 7
        days.update((a + i) % 7 for i in range(span + 1))
    return frozenset(days)


_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _day_index(name: str) -> int:
    """`mon` or `monday` (any case) → 0; anything else is a ValueError."""
    name = name.strip()
    if name in _DAY_NAMES:
        return _DAY_NAMES.index(name)
    if name in _FULL_DAYS:
        return _FULL_DAYS.index(name)
    raise ValueError(name)


def as_time_ranges(value: object) -> tuple[tuple[time, time], ...]:
    """`"09:00-18:00"` or a list of those; an end before the start crosses midnight."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise TypeError
    out: list[tuple[time, time]] = []
    for item in items:
        start_text, sep, end_text = as_str(item).partition("-")
        start, end = _HHMM.match(start_text.strip()), _HHMM.match(end_text.strip())
        if not sep or not start or not end:
            raise ValueError
        begin = time(int(start.group(1)), int(start.group(2)))
        finish = time(int(end.group(1)), int(end.group(2)))
        if begin == finish:
            raise ValueError
        out.append((begin, finish))
    return tuple(out)


def as_date_or_datetime(value: object) -> date | datetime:
    """A YAML date, an aware datetime, or an ISO 8601 string of either (naive = local)."""
    if isinstance(value, datetime | date):
        return value
    text = as_str(value)
    if "T" in text or " " in text.strip():
        return datetime.fromisoformat(text)
    return date.fromisoformat(text)


def show_duration(value: timedelta) -> str:
    """The shortest exact spelling in the config's own units: 7d, 36h, 90s, 0."""
    seconds = value.total_seconds()
    if seconds == 0:
        return "0"
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"

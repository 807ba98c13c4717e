"""Dates written the way each reply language writes them, from Babel's CLDR data (no C locale)."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as babel_date
from babel.dates import format_time as babel_time

STYLES = ("long", "full", "short", "iso")
FALLBACK = "en"


@lru_cache(maxsize=256)
def locale_for(language: str) -> Locale:
    """The CLDR locale of a language code (`fr`, `pt`, `de-CH`, `pt_BR`); English if unknown."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(FALLBACK)


def known(language: str) -> bool:
    """True when CLDR has data for `language` (else dates are written in English)."""
    try:
        Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


def format_date(value: date | datetime, style: str, language: str) -> str:
    """Format a date (or the date and time of a datetime) in `style` for `language`.

    Styles: long ("4 janvier 2027"), full (with the weekday: "lundi 4 janvier 2027"), short
    (04/01/2027), iso (2027-01-04), as CLDR writes them for the language. A datetime that is
    not at midnight also gets its local time ("4 janvier 2027 à 09:05"), in the zone it
    carries. Unknown languages are written in English.
    """
    day = value.date() if isinstance(value, datetime) else value
    if style == "iso":
        text = day.isoformat()
        return f"{text} {value:%H:%M}" if _has_time(value) else text
    locale = locale_for(language)
    text = babel_date(day, style, locale=locale)
    if not _has_time(value):
        return text
    assert isinstance(value, datetime)
    clock = babel_time(value, "short", locale=locale)
    # CLDR's "at time" pattern joining a date and a time ("{1} 'at' {0}", Babel files it as
    # relative), else the plain one ("{1}, {0}"); unquoted as Babel does itself
    pattern = str(locale.datetime_formats_relative.get(style) or locale.datetime_formats.get(style)
                  or "{1} {0}")
    return pattern.replace("'", "").replace("{1}", text).replace("{0}", clock)


def _has_time(value: date | datetime) -> bool:
    return isinstance(value, datetime) and (value.hour, value.minute) != (0, 0)

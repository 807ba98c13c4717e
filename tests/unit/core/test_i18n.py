"""Tests for awayd.core.i18n: dates written per language from CLDR (Babel), never the C locale."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from awayd.core.i18n import STYLES, format_date, known

DAY = date(2027, 1, 4)  # a Monday
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("language", "long", "full", "short"),
    [
        ("en", "January 4, 2027", "Monday, January 4, 2027", "1/4/27"),
        ("fr", "4 janvier 2027", "lundi 4 janvier 2027", "04/01/2027"),
        ("de", "4. Januar 2027", "Montag, 4. Januar 2027", "04.01.27"),
        ("es", "4 de enero de 2027", "lunes, 4 de enero de 2027", "4/1/27"),
        ("it", "4 gennaio 2027", "lunedì 4 gennaio 2027", "04/01/27"),
        ("nl", "4 januari 2027", "maandag 4 januari 2027", "04-01-2027"),
        ("pt", "4 de janeiro de 2027", "segunda-feira, 4 de janeiro de 2027", "04/01/2027"),
        ("pl", "4 stycznia 2027", "poniedziałek, 4 stycznia 2027", "4.01.2027"),
        ("sv", "4 januari 2027", "måndag 4 januari 2027", "2027-01-04"),
        ("tr", "4 Ocak 2027", "4 Ocak 2027 Pazartesi", "4.01.2027"),
    ],
)
def test_styles_per_language(language: str, long: str, full: str, short: str) -> None:
    assert format_date(DAY, "long", language) == long
    assert format_date(DAY, "full", language) == full
    assert format_date(DAY, "short", language) == short
    assert format_date(DAY, "iso", language) == "2027-01-04"


def test_any_language_cldr_knows_is_written_in_it_not_only_a_fixed_few() -> None:
    """Languages the old hand-written tables lacked: Polish declines the month, Japanese has none."""
    assert format_date(DAY, "long", "pl") == "4 stycznia 2027"
    assert format_date(DAY, "long", "ja") == "2027年1月4日"
    assert format_date(DAY, "long", "fi") == "4. tammikuuta 2027"
    assert known("fi")


def test_a_language_with_a_region_uses_the_region_s_conventions() -> None:
    assert format_date(DAY, "short", "en-GB") == "04/01/2027"
    assert format_date(DAY, "short", "de_CH") == "04.01.27"


@pytest.mark.parametrize("language", ["xx", "", "not a language"])
def test_unknown_language_is_written_in_english(language: str) -> None:
    assert not known(language)
    assert format_date(DAY, "full", language) == "Monday, January 4, 2027"


def test_datetime_adds_the_local_time_unless_midnight() -> None:
    assert format_date(datetime(2027, 1, 4, 9, 5, tzinfo=PARIS), "long", "fr") == \
        "4 janvier 2027 à 09:05"
    assert format_date(datetime(2027, 1, 4, 9, 5, tzinfo=PARIS), "full", "de") == \
        "Montag, 4. Januar 2027 um 09:05"
    assert format_date(datetime(2027, 1, 4, 14, 30, tzinfo=PARIS), "full", "en").replace(
        "\u202f", " ") == "Monday, January 4, 2027 at 2:30 PM"
    assert format_date(datetime(2027, 1, 4, 9, 5, tzinfo=PARIS), "iso", "fr") == "2027-01-04 09:05"
    assert format_date(datetime(2027, 1, 4, 0, 0, tzinfo=PARIS), "long", "de") == "4. Januar 2027"


def test_every_month_and_weekday_is_named_in_the_language() -> None:
    months = {format_date(date(2026, m, 1), "long", "fr").split()[1] for m in range(1, 13)}
    days = {format_date(date(2026, 6, 1 + d), "full", "fr").split()[0] for d in range(7)}
    assert len(months) == 12
    assert days == {"lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"}


def test_styles_are_the_documented_four() -> None:
    assert STYLES == ("long", "full", "short", "iso")

"""Tests for awayd.core.i18n: dates written per language without the C locale."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from awayd.core.i18n import STYLES, SUPPORTED, format_date

DAY = date(2027, 1, 4)  # a Monday


@pytest.mark.parametrize(
    ("language", "long", "full", "short"),
    [
        ("en", "4 January 2027", "Monday, 4 January 2027", "2027-01-04"),
        ("fr", "4 janvier 2027", "lundi 4 janvier 2027", "04/01/2027"),
        ("de", "4. Januar 2027", "Montag, 4. Januar 2027", "04/01/2027"),
        ("es", "4 de enero de 2027", "lunes 4 de enero de 2027", "04/01/2027"),
        ("it", "4 gennaio 2027", "lunedì 4 gennaio 2027", "04/01/2027"),
        ("nl", "4 januari 2027", "maandag 4 januari 2027", "04/01/2027"),
        ("pt", "4 de janeiro de 2027", "segunda-feira 4 de janeiro de 2027", "04/01/2027"),
    ],
)
def test_styles_per_language(language: str, long: str, full: str, short: str) -> None:
    assert format_date(DAY, "long", language) == long
    assert format_date(DAY, "full", language) == full
    assert format_date(DAY, "short", language) == short
    assert format_date(DAY, "iso", language) == "2027-01-04"


def test_unknown_language_is_written_in_english() -> None:
    assert format_date(DAY, "full", "ja") == "Monday, 4 January 2027"


def test_datetime_adds_the_time_unless_midnight() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert format_date(datetime(2027, 1, 4, 9, 5, tzinfo=paris), "long", "fr") == \
        "4 janvier 2027 à 09:05"
    assert format_date(datetime(2027, 1, 4, 9, 5, tzinfo=paris), "full", "en") == \
        "Monday, 4 January 2027 at 09:05"
    assert format_date(datetime(2027, 1, 4, 0, 0, tzinfo=paris), "long", "de") == "4. Januar 2027"


def test_every_supported_language_has_every_month_and_weekday() -> None:
    for language in SUPPORTED:
        for month in range(1, 13):
            assert format_date(date(2026, month, 1), "long", language)
        for day in range(7):
            assert format_date(date(2026, 6, 1 + day), "full", language)


def test_styles_are_the_documented_four() -> None:
    assert STYLES == ("long", "full", "short", "iso")

"""Dates written the way each supported reply language writes them, without the C locale."""

from __future__ import annotations

from datetime import date, datetime

_MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
           "September", "Oktober", "November", "Dezember"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
           "settembre", "ottobre", "novembre", "dicembre"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
           "september", "oktober", "november", "december"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
           "setembro", "outubro", "novembro", "dezembro"),
}
_DAYS: dict[str, tuple[str, ...]] = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    "pt": ("segunda-feira", "terça-feira", "quarta-feira", "quinta-feira", "sexta-feira",
           "sábado", "domingo"),
}
_LONG = {"en": "{d} {m} {y}", "fr": "{d} {m} {y}", "de": "{d}. {m} {y}", "es": "{d} de {m} de {y}",
         "it": "{d} {m} {y}", "nl": "{d} {m} {y}", "pt": "{d} de {m} de {y}"}
_AT = {"en": "at", "fr": "à", "de": "um", "es": "a las", "it": "alle", "nl": "om", "pt": "às"}

SUPPORTED = frozenset(_MONTHS)
STYLES = ("long", "full", "short", "iso")


def format_date(value: date | datetime, style: str, language: str) -> str:
    """Format a date (or the date and time of a datetime) in `style` for `language`.

    Styles: long ("4 janvier 2027"), full (with the weekday), short (04/01/2027 or 2027-01-04
    for en), iso. Unknown languages are written in English.
    """
    lang = language if language in SUPPORTED else "en"
    day = value.date() if isinstance(value, datetime) else value
    if style == "iso":
        text = day.isoformat()
    elif style == "short":
        text = day.isoformat() if lang == "en" else day.strftime("%d/%m/%Y")
    else:
        text = _LONG[lang].format(d=day.day, m=_MONTHS[lang][day.month - 1], y=day.year)
        if style == "full":
            weekday = _DAYS[lang][day.weekday()]
            text = f"{weekday}, {text}" if lang in ("en", "de") else f"{weekday} {text}"
    if isinstance(value, datetime) and (value.hour, value.minute) != (0, 0):
        text += f" {_AT[lang]} {value:%H:%M}"
    return text

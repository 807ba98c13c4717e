"""Tests for awayd.core.language: Content-Language first, then detection, then the default."""

from __future__ import annotations

import pytest

from awayd.core.language import choose, detect, readable_text
from awayd.core.message import parse

AVAILABLE = ("fr", "en", "de")

ENGLISH = ("Meeting tomorrow", "Hello Alice, could we meet tomorrow afternoon to discuss the "
           "budget for next year? Thanks a lot, Bob")
GERMAN = ("Besprechung morgen", "Hallo Alice, können wir uns morgen Nachmittag treffen, um das "
          "Budget für das nächste Jahr zu besprechen? Vielen Dank, Jörg")
FRENCH = ("Réunion demain", "Bonjour Alice, pourrions-nous nous voir demain après-midi pour "
          "parler du budget de l'année prochaine ? Merci beaucoup, Marie")


def message(subject: str, body: str, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return f"Subject: {subject}\r\n{head}\r\n{body}\r\n".encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("de", "de"), ("en-US", "en"), ("EN-gb", "en"), ("it, de-CH", "de"), ("de-AT, en", "de")],
)
def test_content_language_wins_over_detection(value: str, expected: str) -> None:
    raw = message(*FRENCH, f"Content-Language: {value}")
    assert choose(parse(raw), AVAILABLE, "fr") == expected


def test_content_language_not_available_falls_through_to_detection() -> None:
    raw = message(*GERMAN, "Content-Language: it")
    assert choose(parse(raw), AVAILABLE, "fr") == "de"


@pytest.mark.parametrize(("text", "expected"), [(ENGLISH, "en"), (GERMAN, "de"), (FRENCH, "fr")])
def test_detection_picks_among_available_languages(text: tuple[str, str], expected: str) -> None:
    assert choose(parse(message(*text)), AVAILABLE, "fr") == expected


def test_detection_only_considers_available_languages() -> None:
    assert choose(parse(message(*GERMAN)), ("fr", "en"), "fr") in ("fr", "en")


def test_short_text_falls_back_to_the_default() -> None:
    assert choose(parse(message("ok", "ok")), AVAILABLE, "fr") == "fr"
    assert detect("ok", AVAILABLE) is None


def test_single_available_language_is_the_default_without_detection() -> None:
    assert choose(parse(message(*ENGLISH)), ("fr",), "fr") == "fr"


def test_detection_ignores_quoted_lines_and_html_tags() -> None:
    body = ("<p>Hello Alice, could we meet tomorrow afternoon to discuss the budget?</p>\r\n"
            "> Bonjour Bob, je suis absente jusqu'au lundi, je vous répondrai à mon retour.\r\n")
    text = readable_text(parse(message("Budget", body)))
    assert "<p>" not in text
    assert "Bonjour" not in text
    assert choose(parse(message("Budget", body)), AVAILABLE, "fr") == "en"


def test_quoted_printable_body_is_decoded_for_detection() -> None:
    body = ("Hallo Alice, k=C3=B6nnen wir uns morgen Nachmittag treffen, um das Budget f=C3=BCr "
            "das n=C3=A4chste Jahr zu besprechen?")
    raw = message("Frage", body, "Content-Transfer-Encoding: quoted-printable")
    assert "können" in readable_text(parse(raw))
    assert choose(parse(raw), AVAILABLE, "fr") == "de"


def test_reply_uses_the_chosen_translation(eml, run) -> None:
    decision = run(eml(subject=ENGLISH[0], body=ENGLISH[1]))
    assert decision.reply is not None
    assert decision.reply.language == "en"
    assert decision.reply.text.startswith("Hello Bob")
    assert decision.reply.header("Content-Language") == "en"


def test_translation_may_override_the_subject(eml, run) -> None:
    decision = run(eml(extra=("Content-Language: de",)))
    assert decision.reply is not None
    assert decision.reply.subject == "Automatische Antwort: Lunch"
    assert decision.reply.text == "Hallo\n"


def test_reply_falls_back_to_the_mailbox_language(eml, run) -> None:
    decision = run(eml(subject="ok", body="ok", extra=("Content-Language: ja",)))
    assert decision.reply is not None
    assert decision.reply.language == "fr"
    assert decision.reply.text.startswith("Bonjour Bob")

"""Tests for awayd.core.compose: the reply's headers (DESIGN §6), bytes on the wire, ticket."""

from __future__ import annotations

import base64
import email
import quopri
import re
from email import policy
from email.message import EmailMessage

import pytest

from awayd.core.compose import first_name, ticket
from awayd.core.message import parse

ENCODED_WORD = re.compile(rb"=\?([^?]+)\?([qQbB])\?([^?]*)\?=")


def wire(decision) -> EmailMessage:
    assert decision.reply is not None, decision.detail
    parsed = email.message_from_bytes(decision.reply.to_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


def decode_alone(kind: bytes, payload: bytes) -> bytes:
    if kind.lower() == b"b":
        return base64.b64decode(payload)
    return quopri.decodestring(payload.replace(b"_", b" "), header=True)


def test_reply_carries_every_design_header(eml, run) -> None:
    decision = run(eml())
    assert decision.reply is not None
    names = [name for name, _ in decision.reply.headers]
    for name in ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
                 "Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", "Reply-To",
                 "Content-Language"):
        assert name in names
    reply = decision.reply
    assert reply.header("auto-submitted") == "auto-replied"
    assert reply.header("X-Auto-Response-Suppress") == "All"
    assert reply.header("Precedence") == "bulk"
    assert reply.header("Reply-To") == "Bob Martin <bob@example.org>"
    assert reply.header("Message-ID") == "<awayd.test@example.org>"


def test_every_design_header_is_on_the_wire(eml, run) -> None:
    msg = wire(run(eml()))
    assert msg["From"] == "Alice Smith <alice@example.org>"
    assert msg["To"] == "Bob Martin <bob@example.net>"
    assert msg["Subject"] == "Auto: Lunch"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Precedence"] == "bulk"
    assert msg["Reply-To"] == "Bob Martin <bob@example.org>"
    assert msg["Content-Language"] == "fr"
    assert msg["In-Reply-To"] == "<lunch.1@example.net>"
    assert msg["References"] == "<lunch.1@example.net>"
    assert msg["Message-ID"] == "<awayd.test@example.org>"
    assert msg["Date"] is not None
    assert msg.get_all("To") == ["Bob Martin <bob@example.net>"]


def test_reply_goes_to_the_return_path_and_never_to_from_or_reply_to(eml, run) -> None:
    raw = eml(return_path="<Bob.Bounce+x@mail.example.net>", from_="Bob <bob@example.net>",
              extra=("Reply-To: carol@example.com", "Sender: dan@example.com"))
    decision = run(raw)
    assert decision.reply is not None
    assert decision.reply.envelope_to == "Bob.Bounce+x@mail.example.net"
    assert decision.reply.to == "Bob.Bounce+x@mail.example.net"
    assert wire(decision)["To"] == "Bob.Bounce+x@mail.example.net"


def test_srs_return_path_is_answered_as_written(eml, run) -> None:
    srs = "SRS0=HHH=TT=client.example=bob@forwarder.example"
    decision = run(eml(return_path=f"<{srs}>"))
    assert decision.reply is not None
    assert decision.reply.envelope_to == srs
    assert decision.sender_key == "bob@client.example"


def test_utf8_return_path_is_written_as_utf8_not_as_an_encoded_word(eml, run) -> None:
    decision = run(eml(return_path="<jörg@bücher.example>", from_="Jörg <jörg@bücher.example>"))
    assert decision.reply is not None
    data = decision.reply.to_bytes()
    to_line = re.search(rb"^To: .*$", data, re.MULTILINE).group(0).rstrip(b"\r")
    assert to_line.endswith(" <jörg@bücher.example>".encode())
    assert b"=?" not in to_line.rpartition(b"<")[2]
    assert wire(decision)["To"].addresses[0].display_name == "Jörg"


def test_from_is_the_alias_named_in_delivered_to(eml, run) -> None:
    raw = eml(to="alice.smith@example.org", extra=("Delivered-To: alice.smith@example.org",))
    decision = run(raw)
    assert decision.reply is not None
    assert decision.reply.from_ == "Alice Smith <alice.smith@example.org>"
    assert wire(decision)["From"].addresses[0].addr_spec == "alice.smith@example.org"
    assert decision.reply.header("Message-ID") == "<awayd.test@example.org>"


def test_from_is_the_alias_written_even_when_delivered_to_names_another(eml, run) -> None:
    """Postfix's alias layout: Delivered-To is the final address, To the alias written."""
    decision = run(eml(to="Alice <alice.smith@example.org>",
                       extra=("Delivered-To: alice@example.org",
                              "X-Original-To: alice.smith@example.org")))
    assert decision.reply is not None
    assert decision.reply.from_ == "Alice Smith <alice.smith@example.org>"
    assert decision.reply.header("X-Loop") == "alice.smith@example.org"


def test_from_is_the_first_own_address_in_to_then_cc(eml, run) -> None:
    decision = run(eml(to="carol@example.com, Devis <DEVIS@example.org>",
                       extra=("Cc: alice.smith@example.org",)))
    assert decision.reply is not None
    assert decision.reply.from_ == "Alice Smith <devis@example.org>"
    decision = run(eml(to="carol@example.com", extra=("Cc: x@example.com, alice.smith@example.org",
                                                      "Bcc: devis@example.org")))
    assert decision.reply is not None
    assert decision.reply.from_ == "Alice Smith <alice.smith@example.org>"


def test_from_is_the_sub_address_written(eml, run) -> None:
    decision = run(eml(to="alice+Conference@example.org",
                       extra=("Delivered-To: alice@example.org",)))
    assert decision.reply is not None
    assert decision.reply.from_ == "Alice Smith <alice+Conference@example.org>"


@pytest.mark.parametrize(
    "subject",
    [
        "Réunion à Lyon",
        "Réunion à Lyon demain matin avec toute l’équipe de développement et les partenaires "
        "commerciaux de la région Auvergne-Rhône-Alpes, ordre du jour en pièce jointe",
        "日本語の件名はとても長くなることがありますので折り返しに注意してください" * 2,
        "emoji 🎉🎉🎉 " * 12,
        "ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
    ],
)
def test_non_ascii_subject_round_trips_without_splitting_an_encoded_word(eml, run,
                                                                         subject: str) -> None:
    decision = run(eml(subject=subject))
    assert decision.reply is not None
    expected = f"Auto: {subject}"[:256].strip()
    assert decision.reply.subject == expected
    data = decision.reply.to_bytes()
    assert wire(decision)["Subject"] == expected
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    head = header_block(data)
    for charset, kind, payload in ENCODED_WORD.findall(head):
        decode_alone(kind, payload).decode(charset.decode())  # strict: a whole character each


def test_encoded_subject_is_decoded_before_auto_is_added(eml, run) -> None:
    decision = run(eml(subject="=?ISO-8859-1?Q?Caf=E9_cr=E8me?="))
    assert decision.reply is not None
    assert decision.reply.subject == "Auto: Café crème"
    assert wire(decision)["Subject"] == "Auto: Café crème"


def test_empty_subject_still_gives_a_subject(eml, run) -> None:
    decision = run(eml(subject=None))
    assert decision.reply is not None
    assert wire(decision)["Subject"] == "Auto:"


def test_long_message_ids_stay_intact_on_the_wire(eml, run) -> None:
    """Real ids are often longer than a line; encoding them would break threading."""
    long_id = "<CAH" + "x" * 90 + "@mail.gmail.com>"
    refs = " ".join(f"<ref{i}.{'y' * 70}@example.net>" for i in range(15))
    decision = run(eml(message_id=long_id, extra=(f"References: {refs}",)))
    data = decision.reply.to_bytes()
    head = header_block(data)
    assert b"=?" not in head.split(b"\r\nSubject:")[0]
    assert b"In-Reply-To: " + long_id.encode() + b"\r\n" in head
    msg = wire(decision)
    assert msg["In-Reply-To"] == long_id
    references = msg["References"].split()
    assert len(references) == 10
    assert references[-1] == long_id
    assert references[0] == f"<ref6.{'y' * 70}@example.net>"
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))


def test_without_message_id_there_is_no_in_reply_to(eml, run) -> None:
    decision = run(eml(message_id=None))
    assert decision.reply is not None
    assert decision.reply.header("In-Reply-To") is None
    assert decision.reply.header("References") is None


def test_absurd_message_id_is_left_out(eml, run) -> None:
    decision = run(eml(message_id="<" + "a" * 1500 + "@example.net>"))
    assert decision.reply is not None
    assert decision.reply.header("In-Reply-To") is None
    assert all(len(line) <= 998 for line in decision.reply.to_bytes().split(b"\r\n"))


def test_text_only_reply_is_text_plain_utf8(eml, make_mailbox, run) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - {name: a, address: alice@example.org, rules: [{name: r, text: "Je suis absente, désolée."}]}
""")
    msg = wire(run(eml(), mailbox))
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert msg.get_content().replace("\r\n", "\n") == "Je suis absente, désolée.\n"
    assert msg["Reply-To"] is None


def test_html_makes_a_multipart_alternative_with_escaped_sender_name(eml, run) -> None:
    decision = run(eml(from_='"<script>alert(1)</script>" <bob@example.net>'))
    assert decision.reply is not None
    assert decision.reply.html == "<p>Bonjour &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    msg = wire(decision)
    assert msg.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = msg.get_body(("html",))
    assert html is not None
    assert "<script>" not in html.get_content()
    assert msg["Content-Language"] == "fr"


def test_text_is_not_escaped(eml, make_mailbox, run) -> None:
    mailbox = make_mailbox("""
mailboxes:
  - {name: a, address: alice@example.org, rules: [{name: r, text: "Hi {{ sender.name }}"}]}
""")
    decision = run(eml(from_='"Tom & <Jerry>" <bob@example.net>'), mailbox)
    assert decision.reply is not None
    assert decision.reply.text == "Hi Tom & <Jerry>\n"


def test_nothing_of_the_original_body_is_quoted(eml, run) -> None:
    secret = "The launch code is 0000, do not share it"
    msg = wire(run(eml(body=secret + "\n")))
    data = msg.as_string()
    assert "launch code" not in data
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            assert secret not in part.get_content()


def test_ticket_is_stable_for_a_message_id_and_differs_between_ids() -> None:
    one = parse(b"Message-ID: <a@example.net>\r\nSubject: x\r\n\r\n")
    again = parse(b"Subject: other\r\nMessage-ID:  <a@example.net>\r\n\r\n")
    other = parse(b"Message-ID: <b@example.net>\r\n\r\n")
    assert ticket(one) == ticket(again)
    assert ticket(one) != ticket(other)
    assert re.fullmatch(r"[A-Z2-7]{6}", ticket(one))


def test_ticket_without_message_id_is_still_stable() -> None:
    raw = b"From: bob@example.net\r\nDate: Mon, 21 Dec 2026 09:00:00 +0100\r\nSubject: x\r\n\r\n"
    assert ticket(parse(raw)) == ticket(parse(raw))


def test_ticket_appears_in_the_text(eml, run) -> None:
    decision = run(eml())
    assert decision.reply is not None
    assert ticket(parse(eml())) in decision.reply.text


@pytest.mark.parametrize(
    ("name", "first"),
    [("Marie Dupont", "Marie"), ("Dupont, Marie", "Marie"), ("'Marie'", "Marie"),
     ("bob@example.net", ""), ("", ""), ("  ", "")],
)
def test_first_name(name: str, first: str) -> None:
    assert first_name(name) == first


def test_date_is_local_to_the_mailbox(eml, run) -> None:
    decision = run(eml())
    assert decision.reply is not None
    assert decision.reply.header("Date") == "Tue, 22 Dec 2026 10:00:00 +0100"


def test_envelope_from_defaults_to_the_null_sender(eml, run) -> None:
    decision = run(eml())
    assert decision.reply is not None
    assert decision.reply.envelope_from == ""


def test_envelope_from_comes_from_the_smtp_settings(eml, make_mailbox, run) -> None:
    mailbox = make_mailbox("""
smtp: {host: smtp.example.org, envelope_from: bounces-ignored@example.org}
mailboxes:
  - {name: a, address: alice@example.org, rules: [{name: r, text: x}]}
""")
    decision = run(eml(), mailbox)
    assert decision.reply is not None
    assert decision.reply.envelope_from == "bounces-ignored@example.org"


def test_reply_bytes_use_crlf_and_ascii_headers(eml, run) -> None:
    data = run(eml(subject="Grüße")).reply.to_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert header_block(data).isascii()

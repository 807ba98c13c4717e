"""Tests for awayd.core.machine: machine mail known by its content, people known by their client."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from awayd.core import machine
from awayd.core import reasons as r
from awayd.core.message import parse
from awayd.core.opening import opening_text

_MIXED = "Content-Type: multipart/mixed; boundary=b"


def _part(text: str, *, ctype: str = "text/plain; charset=utf-8", cte: str = "7bit") -> str:
    return ("This is a multi-part message in MIME format.\n\n--b\n"
            f"Content-Type: {ctype}\nContent-Transfer-Encoding: {cte}\n\n{text}\n--b--\n")


# Each case: a message with a human-looking envelope that a machine wrote, and the reason.
MACHINE: list[tuple[str, dict[str, Any]]] = [
    # any multipart/report, whatever its report-type, and report parts anywhere
    (r.DSN, {"extra": ("Content-Type: multipart/report; boundary=b",)}),
    (r.DSN, {"extra": ('Content-Type: multipart/report; report-type="feedback-report"; boundary=b',)}),
    (r.DSN, {"extra": ("Content-Type: multipart/report; report-type=x-unknown; boundary=b",)}),
    (r.DSN, {"extra": (_MIXED,), "body": _part("Reporting-MTA: dns; mx", ctype="message/delivery-status")}),
    (r.DSN, {"extra": (_MIXED,), "body": _part("Feedback-Type: abuse", ctype="message/feedback-report")}),
    (r.DSN, {"extra": ("Content-Type: message/feedback-report",)}),
    (r.MDN, {"extra": (_MIXED,),
             "body": _part("Disposition: manual-action", ctype="message/disposition-notification")}),
    # bounce and filter subjects of the major MTAs, in several languages
    (r.DSN, {"subject": "Undeliverable: Lunch"}),
    (r.DSN, {"subject": "Returned mail: see transcript for details"}),
    (r.DSN, {"subject": "Mail delivery failed: returning message to sender"}),
    (r.DSN, {"subject": "Delivery Status Notification (Failure)"}),
    (r.DSN, {"subject": "Mail could not be delivered"}),
    (r.DSN, {"subject": "Delivery Failure"}),
    (r.DSN, {"subject": "failure notice"}),
    (r.DSN, {"subject": "[SPAM] Undelivered Mail Returned to Sender"}),
    (r.DSN, {"subject": "Unzustellbar: Angebot"}),
    (r.DSN, {"subject": "=?utf-8?q?Non_remis=C2=A0:_Devis?="}),
    (r.DSN, {"subject": "No se puede entregar: Propuesta"}),
    (r.DSN, {"subject": "Onbestelbaar: Offerte"}),
    (r.DSN, {"subject": "Virus found in message from you"}),
    (r.DSN, {"subject": "BANNED file: invoice.exe in mail from you"}),
    (r.DSN, {"subject": "Symantec Mail Security detected a prohibited attachment"}),
    # bounce openings when the subject says nothing
    (r.DSN, {"subject": "Re: Lunch", "body": "This is the mail system at host mx.example.net.\n"}),
    (r.DSN, {"subject": "Lunch", "body": "Hi. This is the qmail-send program at example.net.\n"}),
    (r.DSN, {"subject": "Lunch",
             "body": "This message was created automatically by mail delivery software.\n"}),
    (r.DSN, {"subject": "Info", "body": "Votre message n'a pas pu être remis à bob@example.net\n"}),
    (r.DSN, {"subject": "Info", "extra": (_MIXED,),
             "body": _part(base64.b64encode(b"Your message could not be delivered to carol.").decode(),
                           cte="base64")}),
    (r.DSN, {"subject": "Info", "extra": ("Content-Transfer-Encoding: quoted-printable",),
             "body": "Ihre Nachricht konnte nicht zugestellt=\n werden.\n"}),
    (r.DSN, {"subject": "Info", "extra": ("Content-Type: text/html",),
             "body": "<html><body><p>Delivery has failed to these recipients or groups:</p>"}),
    # mail systems' display names, cron, list software
    (r.SYSTEM_SENDER, {"from_": "Mail Delivery Subsystem <mailer@example.net>",
                       "return_path": "<relay@example.net>"}),
    (r.SYSTEM_SENDER, {"from_": '"Postmaster" <admin@example.net>', "return_path": "<admin@example.net>"}),
    (r.SYSTEM_SENDER, {"return_path": "<bounces-1234@esp.example.net>"}),
    (r.SYSTEM_SENDER, {"return_path": "<bounces+55-alice=example.org@esp.example.net>"}),
    (r.SYSTEM_SENDER, {"return_path": "<prvs=12ab34cd=mailer-daemon@example.net>"}),
    (r.SYSTEM_SENDER, {"extra": ("X-Cron-Env: <SHELL=/bin/sh>",)}),
    (r.SYSTEM_SENDER, {"subject": "Cron <bob@host> /usr/local/bin/backup"}),
    (r.SYSTEM_SENDER, {"return_path": "<root@host.example.net>", "from_": "root@host.example.net"}),
    (r.LIST, {"subject": "Your message to Dev awaits moderator approval"}),
    # auto-replies and challenge-response systems without the standard headers
    (r.AUTORESPONDER, {"extra": ("Precedence: auto_reply",)}),
    (r.AUTORESPONDER, {"subject": "Abwesenheitsnotiz: Lunch"}),
    (r.AUTORESPONDER, {"subject": "Out of Office AutoReply: Lunch"}),
    (r.AUTORESPONDER, {"subject": "Auto Reply"}),
    (r.AUTORESPONDER, {"subject": "Automatyczna odpowiedź: Lunch"}),
    (r.AUTORESPONDER, {"subject": "Re: Lunch", "body": "This is an automatic reply.\nBob is away.\n"}),
    (r.AUTORESPONDER, {"subject": "Re: Lunch",
                       "body": "Thank you for your email.\nI am out of the office until Monday.\n"}),
    (r.AUTORESPONDER, {"subject": "Re: Lunch",
                       "body": "I apologize for this automatic reply to your email.\n"}),
    (r.AUTORESPONDER, {"subject": "Re: Lunch",
                       "body": "This account is protected by Bluebottle. Please click on the following "
                               "link to have your address added to the allowed list.\n"}),
    (r.LOOP, {"extra": ("X-MS-Exchange-Inbox-Rules-Loop: alice@example.org",)}),
]

# Each case: a person's message close to a machine case; it must be answered.
HUMAN: list[dict[str, Any]] = [
    {"subject": "Out of office coverage plan",
     "body": "Hi Alice,\nI will be out of the office from 3 to 10 January; Carol covers.\n"},
    {"subject": "Vacation photos", "body": "I am back from holiday, here are the photos.\n"},
    {"subject": "Re: the delivery", "body": "The parcel was returned to sender, can you resend it?\n"},
    {"subject": "Delivery problem with the couch"},
    {"subject": "Auto insurance renewal"},
    {"subject": "NDR-Anfrage: Interview am Montag"},
    {"subject": "Undeliverable: Lunch", "extra": ("User-Agent: Mozilla Thunderbird 115.3",),
     "body": "Alice, the mail to Carol bounced, see below. Do you have her new address?\n"},
    {"subject": "Fwd: Returned mail", "extra": ("X-Mailer: Apple Mail (2.3731)",),
     "body": "Any idea why?\n\n---------- Forwarded message ---------\n"
             "This is the mail system at host mx.example.net.\n"},
    {"subject": "Lunch", "body": "Bob wrote that his message could not be delivered to you.\n"
                                 "> This is the mail system at host mx.example.net.\n"},
    {"subject": "Lunch", "body": "Thanks for your message.\nLet's meet on Friday.\n"},
    {"subject": "Re: Lunch", "extra": ("X-Mailer: Microsoft Outlook 16.0",),
     "body": "Thank you for your email. I am out of the office this week, let's talk Monday.\n"},
    {"return_path": "<bob.bounce@example.net>", "from_": "Bob Bounce <bob.bounce@example.net>"},
    {"return_path": "<root@example.net>", "from_": "Root Admin <root@example.net>",
     "extra": ("User-Agent: Mutt/2.2.9",)},
    {"from_": "Bob the Postmaster of Sales <bob@example.net>"},
    {"extra": ("X-MS-Exchange-Inbox-Rules-Loop: bob@example.net",)},
    {"extra": ("Precedence: first-class",), "subject": "Moderation of the panel"},
    {"extra": ("Content-Type: multipart/alternative; boundary=b",),
     "body": _part("Hello Alice, the feedback-report for Q3 is ready.")},
]


@pytest.mark.parametrize(("reason", "kwargs"), MACHINE)
def test_machine_mail_with_a_human_envelope_is_skipped(reason: str, kwargs: dict[str, Any],
                                                       eml, run) -> None:
    decision = run(eml(**kwargs))
    assert (decision.decision, decision.reason) == ("skip", reason), decision.detail


@pytest.mark.parametrize("kwargs", HUMAN)
def test_a_person_is_answered(kwargs: dict[str, Any], eml, run) -> None:
    decision = run(eml(**kwargs))
    assert (decision.decision, decision.reason) == ("reply", "reply"), decision.detail


def test_opening_text_skips_mime_structure_and_decodes_the_first_part() -> None:
    body = _part(base64.b64encode("Réponse: la livraison a échoué.".encode()).decode(), cte="base64")
    message = parse(f"From: b@example.net\n{_MIXED}\n\n{body}".encode())
    assert opening_text(message) == "réponse: la livraison a échoué."


def test_opening_text_stops_where_quoted_text_starts() -> None:
    message = parse(b"From: b@example.net\n\nSee below.\n\nOn Monday, Bob wrote:\n> unable to deliver\n")
    assert opening_text(message) == "see below."


def test_opening_text_reads_only_the_fetched_prefix() -> None:
    """The daemon fetches TEXT_PREFIX bytes of text: what lies beyond is never judged."""
    filler = "Hello Alice, " * (machine.TEXT_PREFIX // 13 + 1)
    message = parse(f"From: b@example.net\n\n{filler}\nThis is the qmail-send program.\n".encode())
    assert machine.bounce_text(opening_text(message)) is None


@pytest.mark.parametrize(("value", "person"), [
    ("Mozilla Thunderbird 115.3", True), ("Microsoft Outlook 16.0", True), ("Apple Mail (2.3731)", True),
    ("Roundcube Webmail/1.6", True), ("Mutt/2.2.9", True), ("K-9 Mail for Android", True),
    ("Novell GroupWise Internet Agent 18.2", False), ("Microsoft Exchange Server", False),
    ("PHPMailer 6.8 (https://github.com/PHPMailer/PHPMailer)", False), ("SocketLabs", False),
    ("Nodemailer (6.9)", False),
])
def test_human_client_knows_mail_clients_from_mail_systems(value: str, person: bool) -> None:
    message = parse(f"From: b@example.net\nX-Mailer: {value}\n\nhi\n".encode())
    assert (machine.human_client(message) is not None) is person


@pytest.mark.parametrize(("subject", "strong"), [
    ("Automatic reply: Lunch", True), ("Auto: Lunch", True), ("Out of Office: Lunch", True),
    ("Out of office", True), ("Réponse automatique : Lunch", True), ("Abwesenheitsnotiz: x", True),
    ("Out of office coverage plan", False), ("Re: out of office", False), ("Vacation plans", False),
    ("Auto insurance", False), ("Away day agenda", False),
])
def test_strong_auto_reply_subjects_from_words_in_a_subject(subject: str, strong: bool) -> None:
    assert machine.strong_auto_subject(subject) is strong


@pytest.mark.parametrize(("subject", "bounce"), [
    ("Undeliverable: Lunch", True), ("Delivery delayed: Lunch", True), ("Delivery Failure", True),
    ("Delivery problem with the couch", False), ("Returned items", False),
    ("Fw: Undeliverable: Lunch", False), ("Sophos renewal quote", False),
])
def test_bounce_subjects(subject: str, bounce: bool) -> None:
    assert machine.bounce_subject(subject) is bounce

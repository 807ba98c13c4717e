"""The reply as Pigeonhole's vacation tests and RFC 5230 §5.4 / RFC 3834 §3.1 expect it."""

from __future__ import annotations

import dataclasses
import email
import re
from email import policy
from email.header import decode_header, make_header

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awayd.core.compose import MAX_SUBJECT_CHARS, compose, recipient_name, shorten
from awayd.core.message import one_line, parse
from awayd.core.wire import needs_smtputf8, without_utf8_ids

ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?[^?\s]*\?=")


def head_lines(data: bytes) -> list[str]:
    return data.partition(b"\r\n\r\n")[0].decode("utf-8").split("\r\n")


def parsed(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


# --- To ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "name"), [
    ({"from_": "Marie Dupont <marie@example.net>"}, "Marie Dupont"),
    ({"from_": "=?utf-8?q?Ren=C3=A9e_O=27Hara?= <MARIE@example.net>"}, "Renée O'Hara"),
    ({"from_": "someone@else.example", "extra": ("Sender: Marie <marie@example.net>",)}, "Marie"),
    ({"from_": "marie@example.net", "extra": ("Reply-To: \"Dupont, Marie\" <marie@example.net>",)},
     "Dupont, Marie"),
    ({"from_": "Other Person <other@example.net>"}, ""),
])
def test_to_carries_the_name_the_sender_gave_the_return_path_address(eml, run, headers, name) -> None:
    decision = run(eml(return_path="<marie@example.net>", **headers))
    assert decision.reply is not None
    assert decision.reply.envelope_to == "marie@example.net"
    to = parsed(decision.reply.to_bytes())["To"].addresses
    assert len(to) == 1
    assert to[0].addr_spec == "marie@example.net"
    assert to[0].display_name == name


def test_to_name_is_found_through_srs(eml, run) -> None:
    decision = run(eml(return_path="<SRS0=h=TT=example.net=marie@forwarder.example>",
                       from_="Marie <marie@example.net>"))
    assert decision.reply is not None
    assert decision.reply.to == "Marie <SRS0=h=TT=example.net=marie@forwarder.example>"


# --- Subject -------------------------------------------------------------------------------


def test_short_subject_is_kept_whole() -> None:
    assert shorten("Auto: Lunch") == "Auto: Lunch"
    assert shorten("x" * MAX_SUBJECT_CHARS) == "x" * MAX_SUBJECT_CHARS


def test_long_subject_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    words = " ".join(f"word{i}" for i in range(100))
    cut = shorten(words, 50)
    assert cut == "word0 word1 word2 word3 word4 word5 word6 word7…"
    assert len(cut) <= 50


def test_subject_without_spaces_is_cut_between_characters_not_inside_one() -> None:
    cut = shorten("e\u0301" * 100, 51)  # é as e + combining acute
    assert cut.endswith("e\u0301…")
    assert len(cut) <= 51


def test_a_long_original_subject_is_cut_in_the_reply(eml, run) -> None:
    subject = "Réunion " * 80
    decision = run(eml(subject=subject))
    assert decision.reply is not None
    got = decision.reply.subject
    assert got.endswith("Réunion…")
    assert len(got) <= MAX_SUBJECT_CHARS
    assert parsed(decision.reply.to_bytes())["Subject"] == got


# --- lines and encoded words ---------------------------------------------------------------


def test_long_non_ascii_display_names_fold_within_78(make_mailbox, eml, run) -> None:
    mb = dataclasses.replace(make_mailbox(), display_name="Marie-Hélène Françoise de la Tour "
                             "d'Auvergne, service des relations internationales")
    decision = run(eml(from_="Jean-Baptiste Émile Château-Renaud de Saint-Exupéry-Montmorency "
                             "<bob@example.net>"), mb)
    assert decision.reply is not None
    data = decision.reply.to_bytes()
    assert all(len(line) <= 78 for line in head_lines(data))
    msg = parsed(data)
    assert msg["From"].addresses[0].addr_spec == "alice@example.org"
    assert msg["To"].addresses[0].addr_spec == "bob@example.net"


def test_multipart_content_type_line_is_folded(eml, run) -> None:
    decision = run(eml())  # the permissive rule has html: multipart/alternative
    assert decision.reply is not None
    data = decision.reply.to_bytes()
    assert all(len(line) <= 78 for line in head_lines(data))
    assert parsed(data).get_content_type() == "multipart/alternative"
    assert len(parsed(data).get_payload()) == 2


def test_many_references_fold_within_78(eml, run) -> None:
    refs = " ".join(f"<{i}.20261222@mail.example.net>" for i in range(30))
    decision = run(eml(extra=(f"References: {refs}",)))
    assert decision.reply is not None
    assert all(len(line) <= 78 for line in head_lines(decision.reply.to_bytes()))


NAME = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=100).map(
    one_line).filter(lambda s: bool(s) and "=?" not in s)
SUBJECT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400).map(one_line).filter(
    lambda s: "=?" not in s)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(subject=SUBJECT, name=NAME, own_name=NAME)
def test_every_reply_header_line_keeps_the_limits_and_decodes_to_the_reply(
    permissive, eml, now, subject, name, own_name
) -> None:
    """Random subjects and names, from the raw UTF-8 original to the bytes on the wire."""
    mb = dataclasses.replace(permissive, display_name=own_name)
    raw = eml(from_=f"{name} <bob@example.net>", subject=subject)
    rule = mb.rules[0]
    # compose directly: the guards (an auto-reply subject, ...) are not what is tested here
    reply = compose(parse(raw), mb, rule, rule.templates, language="fr", sender="bob@example.net",
                    recipient="alice@example.org", envelope_from="", now=now,
                    message_id="<awayd.test@example.org>")
    data = reply.to_bytes()
    for line in head_lines(data):
        assert len(line) <= 78, line
        for word in ENCODED_WORD.findall(line):
            assert len(word) <= 75, word
    assert not needs_smtputf8(data)
    msg = parsed(data)
    assert str(msg["Subject"]) == reply.subject
    if len(subject) + 6 <= MAX_SUBJECT_CHARS:
        assert reply.subject == f"Auto: {subject}".strip()
    # the name the reply means to write: the sender's as awayd read it from the original
    to_name = recipient_name(parse(raw), "bob@example.net")
    if not any(c in name for c in ':;,"\\()<>@[]'):
        assert to_name == name
    for header, want in (("From", own_name), ("To", to_name)):
        if not want:
            continue
        value = msg[header].addresses[0]
        assert value.addr_spec in ("alice@example.org", "bob@example.net")
        phrase = _unfolded(data, header).rpartition(" <")[0]
        if phrase.startswith('"'):  # a quoted string: never encoded words inside
            assert re.sub(r"\\(.)", r"\1", phrase[1:-1]) == want
        else:
            assert str(make_header(decode_header(phrase))) == want


def _unfolded(data: bytes, header: str) -> str:
    block = data.partition(b"\r\n\r\n")[0].decode()
    value = re.search(rf"^{header}: ([^\r\n]*(?:\r\n [^\r\n]*)*)", block, re.MULTILINE)
    assert value is not None
    return value.group(1).replace("\r\n", "")


# --- UTF-8 headers (RFC 6532) ---------------------------------------------------------------


def test_utf8_message_ids_are_kept_and_make_the_reply_need_smtputf8(eml, run) -> None:
    decision = run(eml(message_id="<réunion.1@exämple.de>",
                       extra=("References: <a.0@example.net> <précédent@exämple.de>",)))
    assert decision.reply is not None
    assert decision.reply.header("In-Reply-To") == "<réunion.1@exämple.de>"
    assert decision.reply.header("References") == (
        "<a.0@example.net> <précédent@exämple.de> <réunion.1@exämple.de>")
    data = decision.reply.to_bytes()
    assert needs_smtputf8(data)
    assert "In-Reply-To: <réunion.1@exämple.de>\r\n".encode() in data


def test_without_utf8_ids_leaves_out_only_those_ids(eml, run) -> None:
    decision = run(eml(message_id="<réunion.1@exämple.de>",
                       extra=("References: <a.0@example.net> <précédent@exämple.de>",)))
    assert decision.reply is not None
    data = decision.reply.to_bytes()
    ascii_data = without_utf8_ids(data)
    assert ascii_data is not None
    assert ascii_data.isascii()
    msg = parsed(ascii_data)
    assert msg["In-Reply-To"] is None
    assert msg["References"] == "<a.0@example.net>"
    assert data.partition(b"\r\n\r\n")[2] == ascii_data.partition(b"\r\n\r\n")[2]
    assert msg["Subject"] == parsed(data)["Subject"]


def test_without_utf8_ids_cannot_help_a_utf8_address(eml, run) -> None:
    decision = run(eml(return_path="<jörg@bücher.example>", message_id="<réunion@exämple.de>"))
    assert decision.reply is not None
    assert without_utf8_ids(decision.reply.to_bytes()) is None


def test_message_id_domain_is_ascii_for_an_idn_mailbox(make_mailbox, eml, run) -> None:
    mb = make_mailbox("""
mailboxes:
  - name: jorg
    address: jörg@bücher.example
    rules: [{name: r, interval: 0, text: "Weg."}]
""")
    decision = run(eml(to="jörg@bücher.example"), mb)
    assert decision.reply is not None
    assert decision.reply.message_id == "<awayd.test@xn--bcher-kva.example>"

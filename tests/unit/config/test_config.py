"""Tests for awayd.config: YAML to frozen typed values, every problem reported at once."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from awayd.config.load import load_config, parse_config
from awayd.config.read import as_day_set
from awayd.errors import ConfigError

DATA = Path(__file__).parents[2] / "data"

MINIMAL = """
mailboxes:
  - name: alice
    address: alice@example.org
    rules: [{name: r, text: hello}]
"""

FULL = """
state: {path: state/awayd.db, max_delay: 12h, keep_decisions: 30d}
metrics: {listen: "127.0.0.1:9387"}
smtp:
  host: smtp.example.org
  port: 2525
  security: starttls
  username: awayd
  password_file: /etc/awayd/smtp.pass
  envelope_from: ""
  timeout: 10s
  helo: mx.example.org
  tls_verify: true
  ca_file: /etc/ssl/ca.pem
mailboxes:
  - name: alice
    address: Alice@Example.org
    aliases: [alice.smith@example.org]
    display_name: Alice Smith
    timezone: Europe/Paris
    language: fr
    internal_domains: ["@example.org"]
    contacts: contacts.txt
    max_age: 2d
    sender_fallback: from
    backscatter: {enabled: true, authserv_ids: [MX.example.org]}
    suppression: [OptOut@client.example, "@unsubscribed.example"]
    max_replies: {per_hour: 10, per_day: 50}
    save_copy: Sent
    imap:
      host: imap.example.org
      port: 993
      security: tls
      username: alice
      password_env: ALICE_PASS
      folders: [INBOX, Support]
      poll_interval: 30s
      idle: false
      timeout: 20s
    rules:
      - name: holidays
        kind: absence
        when: {from: 2026-12-20, until: 2027-01-04}
        audience: external
        interval: 3d
        reply_to: Bob Martin <bob@example.org>
        subject: "Absente : {{ subject }}"
        text: "Bonjour, de retour le {{ rule.until | date }}."
        html: "<p>Bonjour</p>"
        translations:
          en: {subject: "Away: {{ subject }}", text: "Back on {{ rule.until | date }}."}
      - name: quotes
        kind: acknowledgement
        match: {to: [Alice.Smith@example.org], subject: "(?i)devis|quote", from_domain: [client.example]}
        when: {weekly: [{days: mon-fri, outside: ["09:00-12:00", "14:00-18:00"]}, {days: [sat, sun]}]}
        interval: 0
        text: "Reçu (réf. {{ ticket }}), réponse dès {{ next_opening }}."
  - name: support
    address: support@example.org
    smtp: {host: relay.example.org, security: tls, username: support, password_command: "pass show relay"}
    imap: {host: imap.example.org, username: support, oauth2_token_command: [get-token, support]}
    rules: [{name: ack, kind: acknowledgement, text: "Reçu."}]
"""


def problems_of(text: str, source: str = "c.yaml", base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source, base_dir)
    return list(caught.value.problems)


def with_mailbox(mailbox_lines: str, top: str = "") -> str:
    return f"""{top}
mailboxes:
  - name: alice
    address: alice@example.org
{mailbox_lines}
"""


def with_rule(rule_lines: str) -> str:
    return with_mailbox(f"""    rules:
      - name: r
{rule_lines}""")


def test_corpus_config_loads() -> None:
    config = load_config(DATA / "config.yaml")
    assert config.source == str(DATA / "config.yaml")
    (alice,) = config.mailboxes
    assert alice.name == "alice"
    assert alice.timezone == ZoneInfo("Europe/Paris")
    assert alice.language == "fr"
    assert "devis@example.org" in alice.addresses
    assert "carol@partner.example" in alice.contacts
    assert "@unsubscribed.example" in alice.suppression
    assert alice.backscatter.authserv_ids == frozenset({"mx.example.org"})
    assert (alice.max_replies.per_hour, alice.max_replies.per_day) == (30, 200)
    assert [rule.name for rule in alice.rules] == ["quotes", "night-desk", "team-only", "holidays"]
    holidays = alice.rules[3]
    assert holidays.when is not None
    assert (holidays.when.start, holidays.when.until) == (date(2026, 12, 20), date(2027, 1, 4))
    assert [lang for lang, _ in holidays.translations] == ["en", "de"]
    assert holidays.interval == timedelta(days=7)
    assert re.fullmatch(r"holidays:[0-9a-f]{12}", holidays.handle)


def test_full_config_loads_into_typed_values(tmp_path: Path) -> None:
    (tmp_path / "contacts.txt").write_text("Carol@Partner.example\n", encoding="utf-8")
    config = parse_config(FULL, str(tmp_path / "c.yaml"), tmp_path)
    assert config.state.path == tmp_path / "state" / "awayd.db"
    assert config.state.max_delay == timedelta(hours=12)
    assert config.state.keep_decisions == timedelta(days=30)
    assert config.metrics.listen == "127.0.0.1:9387"
    assert config.smtp is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.tls.security) == \
        ("smtp.example.org", 2525, "starttls")
    assert config.smtp.password is not None
    assert config.smtp.password.file == Path("/etc/awayd/smtp.pass")
    assert config.smtp.timeout == 10.0
    alice, support = config.mailboxes
    assert alice.address == "alice@example.org"
    assert alice.internal_domains == frozenset({"example.org"})
    assert alice.contacts == frozenset({"carol@partner.example"})
    assert alice.suppression == frozenset({"optout@client.example", "@unsubscribed.example"})
    assert alice.max_age == timedelta(days=2)
    assert alice.sender_fallback == "from"
    assert alice.save_copy == "Sent"
    assert alice.smtp == config.smtp
    assert alice.imap is not None
    assert alice.imap.password is not None
    assert alice.imap.password.env == "ALICE_PASS"
    assert alice.imap.folders == ("INBOX", "Support")
    assert alice.imap.poll_interval == timedelta(seconds=30)
    assert alice.imap.idle is False
    holidays, quotes = alice.rules
    assert holidays.audience == "external"
    assert holidays.reply_to == "Bob Martin <bob@example.org>"
    assert holidays.templates.html is not None
    assert quotes.kind == "acknowledgement"
    assert quotes.interval == timedelta(0)
    assert quotes.match is not None
    assert quotes.match.to == frozenset({"alice.smith@example.org"})
    assert quotes.match.subject is not None
    assert quotes.match.subject.search("Un DEVIS")
    assert quotes.match.from_domain == frozenset({"client.example"})
    assert quotes.when is not None
    office, weekend = quotes.when.weekly
    assert office.days == frozenset(range(5))
    assert office.outside is True
    assert office.ranges == ((time(9), time(12)), (time(14), time(18)))
    assert weekend.days == frozenset({5, 6})
    assert weekend.ranges == ()
    assert support.smtp is not None
    assert support.smtp.tls.security == "tls"
    assert support.smtp.port == 465
    assert support.smtp.password is not None
    assert support.smtp.password.command == ("pass", "show", "relay")
    assert support.imap is not None
    assert support.imap.oauth2_token_command == ("get-token", "support")
    assert support.language == "en"
    assert support.timezone == ZoneInfo("UTC")


def test_config_values_are_frozen() -> None:
    config = parse_config(MINIMAL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mailboxes[0].name = "bob"  # type: ignore[misc]


def test_minimal_config_gets_the_documented_defaults() -> None:
    mailbox = parse_config(MINIMAL).mailboxes[0]
    rule = mailbox.rules[0]
    assert (rule.kind, rule.audience, rule.interval) == ("absence", "everyone", timedelta(days=7))
    assert rule.when is None
    assert rule.match is None
    assert mailbox.max_age == timedelta(days=4)
    assert mailbox.backscatter.enabled is True
    assert mailbox.smtp is None


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("colour: blue\n" + MINIMAL, "colour"),
        ("state: {path: /x.db, colour: blue}\n" + MINIMAL, "state.colour"),
        ("metrics: {listen: '127.0.0.1:1', colour: blue}\n" + MINIMAL, "metrics.colour"),
        ("smtp: {host: h.example, colour: blue}\n" + MINIMAL, "smtp.colour"),
        (with_mailbox("    colour: blue\n    rules: [{name: r, text: x}]"),
         "mailboxes[0].colour"),
        (with_mailbox("    backscatter: {colour: blue}\n    rules: [{name: r, text: x}]"),
         "mailboxes[0].backscatter.colour"),
        (with_mailbox("    max_replies: {colour: blue}\n    rules: [{name: r, text: x}]"),
         "mailboxes[0].max_replies.colour"),
        (with_mailbox("    imap: {host: i.example, username: a, password_env: P, colour: blue}\n"
                      "    smtp: {host: s.example}\n    rules: [{name: r, text: x}]"),
         "mailboxes[0].imap.colour"),
        (with_rule("        text: x\n        colour: blue"), "mailboxes[0].rules[0].colour"),
        (with_rule("        text: x\n        when: {colour: blue}"),
         "mailboxes[0].rules[0].when.colour"),
        (with_rule("        text: x\n        when: {weekly: [{days: sat, colour: blue}]}"),
         "mailboxes[0].rules[0].when.weekly[0].colour"),
        (with_rule("        text: x\n        match: {colour: blue}"),
         "mailboxes[0].rules[0].match.colour"),
        (with_rule("        text: x\n        translations: {de: {text: y, colour: blue}}"),
         "mailboxes[0].rules[0].translations.de.colour"),
    ],
)
def test_unknown_keys_are_rejected_at_every_level(text: str, path: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(f"c.yaml: {path}: expected one of the known keys (")
    assert "found \"unknown key 'colour'\"" in problem


def test_every_problem_is_reported_at_once_with_file_path_expected_and_found() -> None:
    text = with_mailbox("""    timezone: Mars/Olympus
    max_age: four days
    language: french
    rules:
      - name: r
        audience: friends
        interval: soon
        text: x""")
    problems = problems_of(text, "/etc/awayd/config.yaml")
    assert problems == [
        "/etc/awayd/config.yaml: mailboxes[0].timezone: expected an IANA time zone such as "
        "Europe/Paris, found 'Mars/Olympus' (line 5, column 5)",
        "/etc/awayd/config.yaml: mailboxes[0].max_age: expected a duration such as 4d, found "
        "'four days' (line 6, column 5)",
        "/etc/awayd/config.yaml: mailboxes[0].language: expected a language code such as en or "
        "fr, found 'french' (line 7, column 5)",
        "/etc/awayd/config.yaml: mailboxes[0].rules[0].audience: expected everyone | external | "
        "internal | contacts, found 'friends' (line 10, column 9)",
        "/etc/awayd/config.yaml: mailboxes[0].rules[0].interval: expected a duration such as 7d "
        "(0 = every message), found 'soon' (line 11, column 9)",
    ]


def test_problems_in_a_rule_whose_text_fails_are_still_reported() -> None:
    problems = problems_of(with_rule("""        text: "{{ broken"
        interval: soon
        when: {from: someday, weekly: [{days: funday}]}
        match: {subject: "("}"""))
    paths = [p.split(": ")[1] for p in problems]
    assert paths == [  # in the order of the file
        "mailboxes[0].rules[0].text",
        "mailboxes[0].rules[0].interval",
        "mailboxes[0].rules[0].when.from",
        "mailboxes[0].rules[0].when.weekly[0].days",
        "mailboxes[0].rules[0].match.subject",
    ]


def test_error_message_of_config_error_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_mailbox("    timezone: Nowhere\n    language: x1\n    rules: []"), "c")
    assert str(caught.value).count("\n") == len(caught.value.problems) - 1 == 1


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/paris", "", "+01:00", "../etc/passwd"])
def test_bad_timezone(zone: str) -> None:
    (problem,) = problems_of(with_mailbox(f"    timezone: '{zone}'\n    rules: []"))
    assert "mailboxes[0].timezone: expected an IANA time zone" in problem


@pytest.mark.parametrize("duration", ["4 days", "-1d", "1y", "d", "1.5.2h", "true"])
def test_bad_duration(duration: str) -> None:
    (problem,) = problems_of(with_rule(f"        text: x\n        interval: {duration}"))
    assert "mailboxes[0].rules[0].interval: expected a duration" in problem


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("500ms", 0.5), ("60s", 60), ("30m", 1800), ("24h", 86400), ("7d", 604800),
     ("2w", 1209600), ("90", 90), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: float) -> None:
    rule = parse_config(with_rule(f"        text: x\n        interval: {text}")).mailboxes[0].rules[0]
    assert rule.interval == timedelta(seconds=seconds)


@pytest.mark.parametrize("days", ["mon-xyz", "funday", "[]", "[mon, 7]", "''"])
def test_bad_days(days: str) -> None:
    (problem,) = problems_of(with_rule(
        f"        text: x\n        when: {{weekly: [{{days: {days}}}]}}"))
    assert "when.weekly[0].days: expected days such as mon-fri or [sat, sun]" in problem


@pytest.mark.parametrize(
    ("days", "expected"),
    [("mon-fri", {0, 1, 2, 3, 4}), ("[sat, sun]", {5, 6}), ("fri-mon", {4, 5, 6, 0}),
     ("Wednesday", {2}), ("[mon, wed-thu]", {0, 2, 3})],
)
def test_days(days: str, expected: set[int]) -> None:
    rule = parse_config(with_rule(
        f"        text: x\n        when: {{weekly: [{{days: {days}}}]}}")).mailboxes[0].rules[0]
    assert rule.when is not None
    assert rule.when.weekly[0].days == frozenset(expected)


@pytest.mark.parametrize("ranges", ["'25:00-26:00'", "'9:00-18:00'", "'09:00-09:00'",
                                    "'09:00'", "'09:00-18:60'", "[]", "'morning'"])
def test_bad_time_ranges(ranges: str) -> None:
    (problem,) = problems_of(with_rule(
        f"        text: x\n        when: {{weekly: [{{days: mon, inside: {ranges}}}]}}"))
    assert 'when.weekly[0].inside: expected a range "HH:MM-HH:MM"' in problem


def test_inside_and_outside_together_are_refused() -> None:
    (problem,) = problems_of(with_rule(
        "        text: x\n        when: {weekly: [{days: mon, inside: '09:00-10:00', "
        "outside: '11:00-12:00'}]}"))
    assert problem == "c.yaml: mailboxes[0].rules[0].when.weekly[0]: expected either inside or " \
        "outside, found 'both' (line 8, column 25)"


def test_until_before_from_is_refused() -> None:
    (problem,) = problems_of(with_rule(
        "        text: x\n        when: {from: 2026-12-20, until: 2026-12-19}"))
    assert "when.until: expected a day or time on or after `from`" in problem


def test_impossible_date_is_reported_with_its_path() -> None:
    (problem,) = problems_of(with_rule("        text: x\n        when: {until: 2026-02-30}"))
    assert problem.startswith("c.yaml: mailboxes[0].rules[0].when.until: expected a date")
    assert "found '2026-02-30'" in problem


def test_naive_datetimes_are_in_the_mailbox_time_zone() -> None:
    text = with_mailbox("""    timezone: America/New_York
    rules:
      - name: r
        text: x
        when: {from: 2026-12-20 09:00:00, until: "2026-12-24T18:00"}""")
    when = parse_config(text).mailboxes[0].rules[0].when
    assert when is not None
    assert when.start == datetime(2026, 12, 20, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert when.until == datetime(2026, 12, 24, 18, 0, tzinfo=ZoneInfo("America/New_York"))


def test_datetimes_with_an_offset_keep_it() -> None:
    when = parse_config(with_rule(
        "        text: x\n        when: {from: 2026-12-20T09:00:00+01:00}")).mailboxes[0].rules[0].when
    assert when is not None
    assert when.start == datetime(2026, 12, 20, 8, 0, tzinfo=timezone.utc)  # noqa: UP017


def test_bad_regex() -> None:
    (problem,) = problems_of(with_rule("        text: x\n        match: {subject: '(?i)devis('}"))
    assert "match.subject: expected a valid regular expression, found" in problem
    assert "missing )" in problem


@pytest.mark.parametrize(
    ("key", "source"),
    [("text", "'{{ oops'"), ("subject", "'{% if %}'"), ("html", "'<p>{{ a b }}</p>'")],
)
def test_bad_template_syntax(key: str, source: str) -> None:
    lines = {"text": "x", key: source}
    body = "\n".join(f"        {k}: {v}" for k, v in lines.items())
    (problem,) = problems_of(with_rule(body))
    assert re.match(rf"c\.yaml: mailboxes\[0\]\.rules\[0\]\.{key}: expected a valid template, "
                    r"found .*line 1", problem)


def test_text_is_required() -> None:
    (problem,) = problems_of(with_rule("        subject: hi"))
    assert problem == "c.yaml: mailboxes[0].rules[0].text: expected a template string (the reply " \
        "text), found nothing (line 6, column 9)"


def test_both_password_file_and_password_env_are_refused() -> None:
    text = "smtp: {host: s.example, username: u, password_file: /a, password_env: B}\n" + MINIMAL
    (problem,) = problems_of(text)
    assert problem.startswith("c.yaml: smtp.password_env: expected only one of password_file, "
                              "password_env")
    assert "found 'both password_file and password_env'" in problem


def test_imap_without_credentials_is_refused() -> None:
    text = with_mailbox("    imap: {host: i.example, username: a}\n    smtp: {host: s.example}\n"
                        "    rules: []")
    (problem,) = problems_of(text)
    assert problem.startswith("c.yaml: mailboxes[0].imap: expected one of password_file")
    assert "found 'no credentials'" in problem


def test_imap_without_smtp_is_refused() -> None:
    text = with_mailbox("    imap: {host: i.example, username: a, password_env: P}\n"
                        "    rules: []")
    (problem,) = problems_of(text)
    assert problem.startswith("c.yaml: mailboxes[0].smtp: expected an smtp section")


def test_top_level_smtp_serves_every_mailbox() -> None:
    text = with_mailbox("    imap: {host: i.example, username: a, password_env: P}\n"
                        "    rules: []", top="smtp: {host: s.example}")
    mailbox = parse_config(text).mailboxes[0]
    assert mailbox.smtp is not None
    assert mailbox.smtp.host == "s.example"


def test_duplicate_rule_names_are_refused() -> None:
    text = with_mailbox("    rules: [{name: r, text: x}, {name: s, text: y}, {name: r, text: z}]")
    (problem,) = problems_of(text)
    assert problem == ("c.yaml: mailboxes[0].rules: expected unique rule names, found \"'r' twice\" "
                       "(line 5, column 5)")


def test_duplicate_mailbox_names_are_refused() -> None:
    text = MINIMAL + "  - {name: alice, address: other@example.org}\n"
    (problem,) = problems_of(text)
    assert "mailboxes: expected unique mailbox names" in problem


def test_missing_contacts_file_is_reported(tmp_path: Path) -> None:
    (problem,) = problems_of(with_mailbox("    contacts: nowhere.txt\n    rules: []"),
                             base_dir=Path("rel"))
    assert problem.startswith("c.yaml: mailboxes[0].contacts: expected a readable file, found")
    assert "rel/nowhere.txt: No such file" in problem


def test_contacts_text_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "people.txt").write_text(
        "# friends\nCarol@Partner.example\n\n  dave@client.example  \nnot an address\n",
        encoding="utf-8")
    mailbox = parse_config(with_mailbox("    contacts: people.txt\n    rules: []"), "c",
                           tmp_path).mailboxes[0]
    assert mailbox.contacts == frozenset({"carol@partner.example", "dave@client.example"})


def test_vcard_contacts_file(tmp_path: Path) -> None:
    (tmp_path / "contacts.vcf").write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Partner\r\n"
        "EMAIL;TYPE=INTERNET,WORK:Carol@Partner.example\r\n"
        "item1.EMAIL;type=INTERNET:carol.home@home.example\r\n"
        "NOTE:write to nobody@example.com\r\nEND:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Dave\r\nEMAIL:dave@client.example\r\nEND:VCARD\r\n",
        encoding="utf-8")
    mailbox = parse_config(with_mailbox("    contacts: contacts.vcf\n    rules: []"), "c",
                           tmp_path).mailboxes[0]
    assert mailbox.contacts == frozenset({"carol@partner.example", "carol.home@home.example",
                                          "dave@client.example"})


def test_translation_for_the_mailbox_language_is_refused() -> None:
    text = with_rule("        text: x\n        translations: {en: {text: y}}")
    (problem,) = problems_of(text)  # the mailbox language defaults to en
    assert "mailboxes[0].rules[0].translations.en: the mailbox language uses the rule's own " \
        "text" in problem


def test_bad_language_code_for_a_translation() -> None:
    (problem,) = problems_of(with_rule("        text: x\n        translations: {EN-us: {text: y}}"))
    assert "translations.EN-us: expected a language code such as en or de" in problem


@pytest.mark.parametrize(
    ("lines", "path"),
    [
        ("    address: not-an-address\n    rules: []", "mailboxes[0].address"),
        ("    aliases: [bob]\n    rules: []", "mailboxes[0].aliases"),
        ("    suppression: [nobody]\n    rules: []", "mailboxes[0].suppression[0]"),
        ("    sender_fallback: reply-to\n    rules: []", "mailboxes[0].sender_fallback"),
        ("    max_replies: {per_day: -1}\n    rules: []", "mailboxes[0].max_replies.per_day"),
        ("    rules: [{name: r, text: x, reply_to: 'Bob <bob>'}]", "mailboxes[0].rules[0].reply_to"),
        ("    rules: [{name: r, text: x, kind: reminder}]", "mailboxes[0].rules[0].kind"),
        ("    rules: [{name: r, text: x, match: {to: [nobody]}}]",
         "mailboxes[0].rules[0].match.to"),
        ("    rules: {name: r}", "mailboxes[0].rules"),
        ("    rules: [just-a-string]", "mailboxes[0].rules[0]"),
    ],
)
def test_bad_mailbox_and_rule_values(lines: str, path: str) -> None:
    text = "mailboxes:\n  - name: alice\n" + (
        lines if lines.startswith("    address") else "    address: alice@example.org\n" + lines)
    problems = problems_of(text)
    assert any(p.startswith(f"c.yaml: {path}: expected ") for p in problems), problems


@pytest.mark.parametrize(
    ("top", "path"),
    [
        ("smtp: {host: s.example, port: 70000}", "smtp.port"),
        ("smtp: {host: s.example, security: ssl}", "smtp.security"),
        ("smtp: {host: s.example, envelope_from: 'not an address'}", "smtp.envelope_from"),
        ("smtp: {port: 25}", "smtp.host"),
        ("metrics: {listen: 9387}", "metrics.listen"),
        ("state: {max_delay: forever}", "state.max_delay"),
    ],
)
def test_bad_top_level_values(top: str, path: str) -> None:
    problems = problems_of(top + "\n" + MINIMAL)
    assert any(p.startswith(f"c.yaml: {path}: expected ") for p in problems), problems


def test_no_mailboxes_is_refused() -> None:
    assert problems_of("state: {path: /x.db}\n") == [
        "c.yaml: mailboxes: expected a list with at least one mailbox, found nothing"]


def test_invalid_yaml_names_the_line() -> None:
    (problem,) = problems_of("mailboxes:\n  - name: [unclosed\n")
    assert problem.startswith("c.yaml: line ")
    assert "not valid YAML" in problem


def test_top_level_must_be_a_mapping() -> None:
    (problem,) = problems_of("- just\n- a list\n")
    assert "expected a mapping at the top level" in problem


def test_load_config_reports_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.yaml")


def test_load_config_reads_relative_paths_from_the_config_directory(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("state: {path: s.db}\n" + MINIMAL, encoding="utf-8")
    config = load_config(tmp_path / "c.yaml")
    assert config.state.path == tmp_path / "s.db"


def test_rule_handle_changes_when_the_text_changes() -> None:
    one = parse_config(with_rule("        text: hello")).mailboxes[0].rules[0]
    same = parse_config(with_rule("        text: hello")).mailboxes[0].rules[0]
    other = parse_config(with_rule("        text: hello!")).mailboxes[0].rules[0]
    assert one.handle == same.handle
    assert one.handle != other.handle
    assert one.handle.startswith("r:")


def test_a_word_that_only_starts_like_a_day_is_refused() -> None:
    """`monkey` is not Monday; `monday` and `mon` both are."""
    assert as_day_set(["monday", "sat-sun"]) == frozenset({0, 5, 6})
    with pytest.raises(ValueError, match="monkey"):
        as_day_set("monkey")


@pytest.mark.parametrize("value", ["0s", "-1", "soon"])
def test_retry_base_must_be_a_positive_duration(value: str) -> None:
    (problem,) = problems_of(f"state: {{retry_base: {value!r}}}\n" + MINIMAL)
    assert "state.retry_base: expected a duration above 0" in problem


def test_retry_base_defaults_to_30_seconds_and_can_be_set() -> None:
    assert parse_config(MINIMAL).state.retry_base == timedelta(seconds=30)
    assert parse_config("state: {retry_base: 2s}\n" + MINIMAL).state.retry_base == timedelta(seconds=2)


def test_paths_may_start_with_a_tilde_for_the_home_directory() -> None:
    config = parse_config("state: {path: ~/.local/state/awayd/state.db}\n" + MINIMAL)
    assert config.state.path == Path.home() / ".local/state/awayd/state.db"


def test_subaddress_separator_defaults_to_plus() -> None:
    assert parse_config(with_mailbox("    rules: []")).mailboxes[0].subaddress_separator == "+"


@pytest.mark.parametrize(("value", "expected"), [("'-'", "-"), ("'--'", "--"), ("'_'", "_"),
                                                 ("null", None), ("''", None)])
def test_subaddress_separator_values(value: str, expected: str | None) -> None:
    config = parse_config(with_mailbox(f"    subaddress_separator: {value}\n    rules: []"))
    assert config.mailboxes[0].subaddress_separator == expected


@pytest.mark.parametrize("value", ["'@'", "'a@b'", "' '", "'+ '", "'toolongsep'", "[+]", '"\\t"'])
def test_bad_subaddress_separator(value: str) -> None:
    (problem,) = problems_of(with_mailbox(f"    subaddress_separator: {value}\n    rules: []"))
    assert "mailboxes[0].subaddress_separator: expected a short string without" in problem

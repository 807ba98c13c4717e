"""Config problems for people: one pass, line and column, did-you-mean, mixed date kinds."""

from __future__ import annotations

import pytest

from awayd.config.load import parse_config
from awayd.config.marks import yaml_marks
from awayd.errors import ConfigError

CONFIG = """\
smtp: {host: smtp.example.org}
mailboxes:
  - name: alice
    address: alice@example.org
    timezone: Europe/Paris
    imap:
      host: imap.example.org
      username: alice
      pasword_file: alice.pass
    rules:
      - name: away
        text: "Hello {{ sendr.first_name }}"
      - name: weekend
        audiance: everyone
        when: {from: 2026-12-20T09:00:00, until: 2026-12-19}
        text: "ok"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    return list(caught.value.problems)


def test_every_problem_comes_in_one_pass_with_its_line_and_column() -> None:
    """An unknown key, a template error and a bad date, all at once, each where it is."""
    found = problems(CONFIG)
    assert found == [
        "c.yaml: mailboxes[0].imap: expected one of password_file, password_env, "
        "password_command, password_credential or oauth2_token_command, found 'no credentials' "
        "(line 6, column 5)",
        "c.yaml: mailboxes[0].imap.pasword_file: expected one of the known keys (ca_file, folders, "
        "host, idle, master_password_command, master_password_credential, master_password_env, "
        "master_password_file, master_separator, master_user, oauth2_token_command, "
        "password_command, password_credential, password_env, password_file, poll_interval, "
        "port, push, security, timeout, tls_verify, username), found "
        "\"unknown key 'pasword_file'\"; did you mean 'password_file'? (line 9, column 7)",
        "c.yaml: mailboxes[0].rules[0].text: 'sendr' is undefined; did you mean 'sender'? "
        "(line 12, column 9)",
        "c.yaml: mailboxes[0].rules[1].audiance: expected one of the known keys (audience, html, "
        "interval, kind, match, name, reply_to, subject, text, translations, when), found "
        "\"unknown key 'audiance'\"; did you mean 'audience'? (line 14, column 9)",
        "c.yaml: mailboxes[0].rules[1].when.until: expected a day or time on or after `from`, "
        "found '2026-12-19' (line 15, column 43)",
    ]


def test_an_unknown_key_far_from_any_known_one_gets_no_suggestion() -> None:
    (problem,) = problems("colour: blue\nmailboxes: [{name: a, address: a@example.org}]\n")
    assert "unknown key 'colour'" in problem
    assert "did you mean" not in problem
    assert problem.endswith("(line 1, column 1)")


@pytest.mark.parametrize(("start", "until"), [
    ("2026-12-20T09:00:00+01:00", "2026-12-19"),     # the whole 19th is before 09:00 on the 20th
    ("2026-12-21", "2026-12-20T23:59:00+01:00"),     # a datetime before the first day begins
])
def test_until_before_from_is_refused_when_date_and_datetime_are_mixed(start: str, until: str) -> None:
    (problem,) = problems("mailboxes: [{name: a, address: a@example.org, timezone: Europe/Paris, "
                          f"rules: [{{name: r, text: x, when: {{from: '{start}', until: '{until}'}}}}]}}]\n")
    assert "rules[0].when.until: expected a day or time on or after `from`" in problem


@pytest.mark.parametrize(("start", "until"), [
    ("2026-12-20T09:00:00+01:00", "2026-12-20"),     # `until` date includes the whole 20th
    ("2026-12-20", "2026-12-20T12:00:00+01:00"),
])
def test_mixed_date_and_datetime_in_order_are_accepted(start: str, until: str) -> None:
    config = parse_config("mailboxes: [{name: a, address: a@example.org, timezone: Europe/Paris, "
                          f"rules: [{{name: r, text: x, when: {{from: '{start}', until: '{until}'}}}}]}}]\n")
    assert config.mailboxes[0].rules[0].when is not None


def test_marks_follow_keys_and_list_items() -> None:
    marks = yaml_marks(CONFIG)
    assert marks["smtp"] == (1, 1)
    assert marks["smtp.host"] == (1, 8)
    assert marks["mailboxes[0]"] == (3, 5)
    assert marks["mailboxes[0].rules[1].when.until"] == (15, 43)


def test_marks_of_an_alias_bomb_are_cheap() -> None:
    """A node reached again through an alias is walked once: the work stays linear."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    marks = yaml_marks("\n".join(lines) + "\n")
    assert len(marks) < 200
    assert marks["a11"] == (12, 1)


def test_invalid_yaml_has_no_marks() -> None:
    assert yaml_marks("a: [unclosed\n") == {}


def test_paths_keep_the_yaml_index_when_an_earlier_mailbox_or_rule_failed() -> None:
    found = problems("""\
mailboxes:
  - name: broken
  - name: second
    address: second@example.org
    imap: {host: i.example, username: s, password_env: P}
    rules:
      - {name: first, text: "{{ oops"}
      - {name: 2026, text: "{{ sender.nickname }}"}
""")
    assert [p.split(": ")[1] for p in found] == [
        "mailboxes[0].address",
        "mailboxes[1].smtp",
        "mailboxes[1].rules[0].text",
        "mailboxes[1].rules[1].text",
    ]

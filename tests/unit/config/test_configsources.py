"""Mailboxes of a mail host: defaults, included files, a command, master-user login, push keys."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from awayd.config.check import summary
from awayd.config.load import load_config, parse_config
from awayd.config.sources import merge_defaults
from awayd.errors import ConfigError

HOST = """\
smtp: {host: smtp.example.org}
defaults:
  timezone: Europe/Paris
  language: fr
  imap:
    host: imap.example.org
    security: starttls
    master_user: awayd
    master_password_file: /etc/awayd/master.pass
    folders: [INBOX]
  rules:
    - name: away
      text: "Absent."
"""


def problems_of(text: str, tmp_path: Path | None = None) -> list[str]:
    if tmp_path is None:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "c.yaml")
        return list(caught.value.problems)
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return list(caught.value.problems)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def script(path: Path, body: str) -> Path:
    write(path, "#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_merge_keeps_own_keys_and_merges_server_sections_key_by_key() -> None:
    merged, inherited = merge_defaults(
        {"language": "fr", "aliases": ["x@example.org"], "imap": {"host": "h", "port": 143}},
        {"language": "en", "imap": {"port": 993}})
    assert merged == {"language": "en", "aliases": ["x@example.org"],
                      "imap": {"port": 993, "host": "h"}}
    assert inherited == {"aliases", "imap.host"}


def test_a_mailbox_with_its_own_credentials_inherits_none_of_the_defaults() -> None:
    merged, _ = merge_defaults(
        {"imap": {"host": "h", "master_user": "m", "master_password_file": "/m"}},
        {"imap": {"username": "bob", "password_env": "BOB"}})
    assert merged == {"imap": {"host": "h", "username": "bob", "password_env": "BOB"}}


def test_an_explicit_null_in_the_mailbox_wins_over_the_default() -> None:
    config = parse_config(HOST + "  save_copy: Sent\nmailboxes:\n"
                          "  - {name: a, address: a@example.org}\n"
                          "  - {name: b, address: b@example.org, save_copy: null}\n")
    assert [m.save_copy for m in config.mailboxes] == ["Sent", None]


def test_every_mailbox_inherits_the_defaults_and_its_own_keys_win() -> None:
    config = parse_config(HOST + """\
mailboxes:
  - {name: alice, address: alice@example.org}
  - name: bob
    address: bob@example.org
    language: de
    imap: {port: 10143, folders: [INBOX, Support]}
    rules: [{name: own, text: "Bob's own."}]
""")
    alice, bob = config.mailboxes
    assert (alice.language, bob.language) == ("fr", "de")
    assert alice.timezone.key == bob.timezone.key == "Europe/Paris"
    assert alice.imap is not None
    assert bob.imap is not None
    assert (alice.imap.host, alice.imap.port, alice.imap.username) == (
        "imap.example.org", 143, "alice@example.org")
    assert (bob.imap.host, bob.imap.port, bob.imap.folders) == (
        "imap.example.org", 10143, ("INBOX", "Support"))
    assert (alice.imap.master_user, alice.imap.master_separator) == ("awayd", None)
    assert [r.name for r in alice.rules] == ["away"]
    assert [r.name for r in bob.rules] == ["own"]


def test_a_bad_default_is_reported_once_at_its_own_line() -> None:
    text = HOST.replace("security: starttls", "security: ssl") + """\
mailboxes:
  - {name: a, address: a@example.org}
  - {name: b, address: b@example.org}
"""
    found = problems_of(text)
    assert len(found) == 1, found
    assert found[0].startswith("c.yaml: defaults.imap.security: expected none | starttls | tls")
    assert found[0].endswith("(line 7, column 5)")


def test_defaults_may_not_name_a_mailbox() -> None:
    found = problems_of("defaults: {address: x@example.org}\nmailboxes:\n"
                        "  - {name: a, address: a@example.org}\n")
    assert any(p.startswith("c.yaml: defaults.address: expected no per-mailbox key") for p in found)


def test_included_files_add_mailboxes_relative_to_the_config(tmp_path: Path) -> None:
    write(tmp_path / "mailboxes.d" / "a.yaml", "- {name: a, address: a@example.org}\n")
    write(tmp_path / "mailboxes.d" / "b.yaml",
          "mailboxes:\n  - {name: b, address: b@example.org}\n  - {name: c, address: c@example.org}\n")
    write(tmp_path / "mailboxes.d" / "empty.yaml", "")
    path = write(tmp_path / "c.yaml", HOST + "include: [mailboxes.d/*.yaml]\n")
    config = load_config(path)
    assert [m.name for m in config.mailboxes] == ["a", "b", "c"]
    assert all(m.language == "fr" for m in config.mailboxes)
    assert [(s.kind, s.count) for s in config.sources] == [("config", 0), ("include", 3)]
    assert "3 mailbox(es) from mailboxes.d/*.yaml (3 file(s))" in summary(
        config, __import__("datetime").datetime(2026, 1, 1, tzinfo=__import__("datetime").UTC))


def test_an_error_in_an_included_file_names_that_file_and_line(tmp_path: Path) -> None:
    bad = write(tmp_path / "mailboxes.d" / "bad.yaml",
                "- name: a\n  address: a@example.org\n  langauge: fr\n")
    found = problems_of(HOST + "include: mailboxes.d/*.yaml\n", tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{bad}: [0].langauge: expected one of the known keys")
    assert found[0].endswith("(line 3, column 3)")


def test_invalid_yaml_in_an_included_file_is_named(tmp_path: Path) -> None:
    bad = write(tmp_path / "m" / "x.yaml", "- {name: a\n")
    found = problems_of(HOST + "include: [m/*.yaml]\nmailboxes: [{name: z, address: z@example.org}]\n",
                        tmp_path)
    assert any(p.startswith(f"{bad}: line ") and "not valid YAML" in p for p in found), found


def test_a_missing_included_file_is_an_error_but_an_empty_glob_is_not(tmp_path: Path) -> None:
    found = problems_of(HOST + "include: [gone.yaml]\nmailboxes: [{name: z, address: z@example.org}]\n",
                        tmp_path)
    assert any("include: expected a readable UTF-8 file for 'gone.yaml'" in p for p in found)
    path = write(tmp_path / "ok.yaml", HOST + "include: [none.d/*.yaml]\n"
                 "mailboxes: [{name: z, address: z@example.org}]\n")
    assert [m.name for m in load_config(path).mailboxes] == ["z"]


def test_the_mailbox_command_gives_one_mailbox_per_address(tmp_path: Path) -> None:
    script(tmp_path / "users",
           "printf 'u1@example.org\\n\\n# comment\\nU2@Example.org\\nbob@example.org\\n'\n")
    path = write(tmp_path / "c.yaml", HOST + "mailbox_command: ./users\nmailboxes:\n"
                 "  - {name: bob, address: bob@example.org, language: en}\n")
    config = load_config(path)
    assert [(m.name, m.address, m.language) for m in config.mailboxes] == [
        ("bob", "bob@example.org", "en"), ("u1@example.org", "u1@example.org", "fr"),
        ("u2@example.org", "u2@example.org", "fr")]
    assert config.mailboxes[1].imap is not None
    assert config.mailboxes[1].imap.username == "u1@example.org"
    assert config.command_addresses == ("u1@example.org", "u2@example.org", "bob@example.org")
    assert [(s.kind, s.count) for s in config.sources] == [("config", 1), ("command", 2)]


def test_a_bad_line_from_the_command_is_named(tmp_path: Path) -> None:
    script(tmp_path / "users", "echo u1@example.org; echo 'not an address'\n")
    found = problems_of(HOST + "mailbox_command: [./users]\n", tmp_path)
    assert found == [f"{tmp_path / 'c.yaml'}: mailbox_command: line 2 of the output of "
                     f"{tmp_path / 'users'}: expected an address, found 'not an address' "
                     "(line 14, column 1)"]


def test_a_failing_command_is_an_error_at_start(tmp_path: Path) -> None:
    script(tmp_path / "users", "echo 'doveadm: auth down' >&2; exit 75\n")
    found = problems_of(HOST + "mailbox_command: [./users]\n", tmp_path)
    assert len(found) == 1, found
    assert "exited with status 75: doveadm: auth down" in found[0]


def test_a_failing_command_at_reload_keeps_the_previous_list(tmp_path: Path) -> None:
    users = script(tmp_path / "users", "echo u1@example.org; echo u2@example.org\n")
    path = write(tmp_path / "c.yaml", HOST + "mailbox_command: [./users]\n")
    first = load_config(path)
    script(users, "exit 1\n")
    again = load_config(path, previous=first)
    assert [m.name for m in again.mailboxes] == ["u1@example.org", "u2@example.org"]
    assert len(again.notes) == 1
    assert "kept the 2 mailbox(es)" in again.notes[0]
    script(users, "echo u3@example.org\n")
    assert [m.name for m in load_config(path, previous=first).mailboxes] == ["u3@example.org"]


def test_problems_of_command_mailboxes_come_once_from_the_defaults(tmp_path: Path) -> None:
    script(tmp_path / "users", "echo u1@example.org; echo u2@example.org\n")
    found = problems_of("defaults:\n  imap: {host: h.example.org}\n  rules: [{name: r, text: x}]\n"
                        "mailbox_command: [./users]\n", tmp_path)
    where = f"{tmp_path / 'c.yaml'}: defaults"
    assert [p.split(": expected")[0] for p in found] == [
        f"{where}.smtp", f"{where}.imap", f"{where}.imap.username"], found


def test_master_user_needs_its_password_and_excludes_the_mailbox_password() -> None:
    found = problems_of("""\
smtp: {host: s.example.org}
mailboxes:
  - name: a
    address: a@example.org
    imap: {host: h.example.org, master_user: awayd}
  - name: b
    address: b@example.org
    imap: {host: h.example.org, username: b, password_file: /p, master_user: m,
           master_password_env: M}
  - name: c
    address: c@example.org
    imap: {host: h.example.org, username: c, master_password_env: M}
""")
    assert {p.split(": expected")[0] for p in found} == {
        "c.yaml: mailboxes[0].imap", "c.yaml: mailboxes[0].imap.master_user",
        "c.yaml: mailboxes[1].imap.master_user", "c.yaml: mailboxes[2].imap",
        "c.yaml: mailboxes[2].imap.master_user", "c.yaml: mailboxes[0].imap.username"}, found
    assert any("found 'no master password'" in p for p in found)
    assert any("expected either the mailbox's own password or a master user" in p for p in found)


def test_push_mailboxes_need_the_push_section_and_loopback_listen() -> None:
    base = HOST.replace("folders: [INBOX]", "folders: [INBOX]\n    push: true")
    found = problems_of(base + "mailboxes: [{name: a, address: a@example.org}]\n")
    assert any(p.startswith("c.yaml: push: expected a push section") for p in found), found
    found = problems_of(base + "push: {listen: '0.0.0.0:8787', token_env: T}\n"
                        "mailboxes: [{name: a, address: a@example.org}]\n")
    assert any(p.startswith("c.yaml: push.listen: expected 127.0.0.1:PORT") for p in found)
    found = problems_of(base + "push: {listen: '127.0.0.1:8787'}\n"
                        "mailboxes: [{name: a, address: a@example.org}]\n")
    assert any(p.startswith("c.yaml: push: expected one of token_file") for p in found)


def test_push_settings_and_their_defaults() -> None:
    config = parse_config(HOST.replace("folders: [INBOX]", "push: true") +
                          "push: {listen: 'unix:/run/awayd/push.sock', token_file: /t}\n"
                          "mailboxes: [{name: a, address: a@example.org}]\n")
    assert config.push is not None
    assert config.push.listen == "unix:/run/awayd/push.sock"
    assert config.push.sweep_interval.total_seconds() == 300
    assert config.mailboxes[0].imap is not None
    assert config.mailboxes[0].imap.push


def test_two_push_mailboxes_may_not_share_an_imap_user() -> None:
    found = problems_of(HOST.replace("folders: [INBOX]", "push: true") +
                        "push: {listen: '127.0.0.1:8787', token_env: T}\nmailboxes:\n"
                        "  - {name: a, address: a@example.org, imap: {username: shared}}\n"
                        "  - {name: b, address: b@example.org, imap: {username: shared}}\n")
    assert any("'a' and 'b' both log in as shared" in p for p in found), found


def test_push_mode_is_refused_with_a_state_shared_by_several_hosts() -> None:
    found = problems_of(HOST.replace("folders: [INBOX]", "push: true") +
                        "state: {url: 'postgresql://awayd@db.example.org/awayd'}\n"
                        "push: {listen: '127.0.0.1:8787', token_env: T}\n"
                        "mailboxes: [{name: a, address: a@example.org}]\n")
    assert any(p.startswith("c.yaml: push: push mode needs the state on SQLite") for p in found), found

"""Tests for awayd.config.paths: files resolve against the config's directory; the default path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from awayd.config.load import load_config, parse_config
from awayd.config.paths import SYSTEM_CONFIG, default_config_path
from awayd.errors import ConfigError

CONFIG = """
state: {path: state.db}
smtp: {host: smtp.example.org, username: awayd, password_file: secrets/smtp.pass,
       ca_file: certs/ca.pem}
mailboxes:
  - name: alice
    address: alice@example.org
    contacts: alice.contacts
    imap: {host: imap.example.org, username: alice, password_file: ~/alice.pass,
           ca_file: /etc/ssl/private-ca.pem}
    rules: [{name: r, text: hi}]
  - name: bob
    address: bob@example.org
    imap: {host: imap.example.org, username: bob, password_file: ./bob.pass}
    smtp: {host: smtp2.example.org, username: bob, password_file: bob-smtp.pass}
    rules: [{name: r, text: hi}]
"""


def _write(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "alice.contacts").write_text("carol@example.net\n", encoding="utf-8")
    path = directory / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_every_file_in_the_config_resolves_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service runs from `/`: a relative password_file must not depend on the CWD."""
    etc = tmp_path / "etc" / "awayd"
    path = _write(etc)
    monkeypatch.chdir("/")
    config = load_config(path)
    alice, bob = config.mailboxes
    assert config.state.path == etc / "state.db"
    assert config.smtp is not None
    assert config.smtp.password is not None
    assert config.smtp.password.file == etc / "secrets" / "smtp.pass"
    assert config.smtp.tls.ca_file == etc / "certs" / "ca.pem"
    assert alice.contacts == frozenset({"carol@example.net"})
    assert alice.imap is not None
    assert alice.imap.password is not None
    assert alice.imap.password.file == Path.home() / "alice.pass"
    assert alice.imap.tls.ca_file == Path("/etc/ssl/private-ca.pem")
    assert bob.imap is not None
    assert bob.imap.password is not None
    assert bob.imap.password.file == etc / "bob.pass"
    assert bob.smtp is not None
    assert bob.smtp.password is not None
    assert bob.smtp.password.file == etc / "bob-smtp.pass"


def test_commands_named_by_a_relative_path_resolve_against_the_config_directory(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""
smtp: {host: s.example, username: me, oauth2_token_command: [./bin/token, --smtp]}
mailboxes:
  - name: me
    address: me@example.org
    imap: {host: i.example, username: me, password_command: "secret-tool lookup awayd imap"}
    rules: [{name: r, text: hi}]
  - name: other
    address: other@example.org
    imap: {host: i.example, username: other, oauth2_token_command: "~/tok other"}
    rules: [{name: r, text: hi}]
""", encoding="utf-8")
    config = load_config(path)
    assert config.smtp is not None
    assert config.smtp.oauth2_token_command == (str(tmp_path / "bin" / "token"), "--smtp")
    me, other = config.mailboxes
    assert me.imap is not None
    assert me.imap.password is not None
    assert me.imap.password.command == ("secret-tool", "lookup", "awayd", "imap")  # from PATH
    assert other.imap is not None
    assert other.imap.oauth2_token_command == (str(Path.home() / "tok"), "other")


def test_a_mailbox_without_its_own_smtp_shares_the_resolved_top_level_relay(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path))
    assert config.mailboxes[0].smtp is config.smtp


def test_a_relative_config_path_is_anchored_where_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("conf/config.yaml"))
    assert config.mailboxes[1].imap is not None
    assert config.mailboxes[1].imap.password is not None
    assert config.mailboxes[1].imap.password.file == tmp_path / "conf" / "bob.pass"


def test_awayd_config_variable_comes_first(tmp_path: Path) -> None:
    _write(tmp_path / ".config" / "awayd")
    env = {"AWAYD_CONFIG": "/srv/a.yaml", "HOME": str(tmp_path)}
    assert default_config_path(env, euid=1000) == Path("/srv/a.yaml")


def test_a_users_own_config_is_the_default_when_it_exists(tmp_path: Path) -> None:
    mine = _write(tmp_path / ".config" / "awayd")
    assert default_config_path({"HOME": str(tmp_path)}, euid=1000) == mine


def test_xdg_config_home_is_honoured(tmp_path: Path) -> None:
    mine = _write(tmp_path / "xdg" / "awayd")
    env = {"HOME": "/nonexistent", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert default_config_path(env, euid=1000) == mine


def test_without_a_users_config_the_system_config_is_the_default(tmp_path: Path) -> None:
    assert default_config_path({"HOME": str(tmp_path)}, euid=1000) == SYSTEM_CONFIG
    assert default_config_path({}, euid=1000) == SYSTEM_CONFIG


def test_root_always_means_the_system_config(tmp_path: Path) -> None:
    """An administrator's `awayd report` on a mail host must not pick up root's own file."""
    _write(tmp_path / ".config" / "awayd")
    assert default_config_path({"HOME": str(tmp_path)}, euid=0) == SYSTEM_CONFIG


def test_awayd_check_without_config_finds_the_users_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI asks default_config_path with the real environment and effective uid."""
    from awayd.cli.main import main  # noqa: PLC0415

    mine = _write(tmp_path / ".config" / "awayd")
    (mine.parent / "secrets").mkdir()
    for name in ("secrets/smtp.pass", "bob.pass", "bob-smtp.pass"):
        (mine.parent / name).write_text("pw\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AWAYD_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["check"]) == 78  # alice's ~/alice.pass and certs/ca.pem are missing
    err = capsys.readouterr().err
    assert err.startswith(f"{mine}: ")
    assert f"password file {tmp_path / 'alice.pass'}: cannot read" in err


def test_smtp_oauth2_token_command_is_accepted_at_top_level_and_per_mailbox() -> None:
    config = parse_config("""
smtp: {host: smtp.gmail.com, security: tls, username: me@gmail.com,
       oauth2_token_command: [oauth2-token, gmail]}
mailboxes:
  - name: me
    address: me@gmail.com
    imap: {host: imap.gmail.com, username: me@gmail.com, oauth2_token_command: oauth2-token gmail}
    rules: [{name: r, text: hi}]
  - name: work
    address: me@example.com
    smtp: {host: smtp.office365.com, username: me@example.com,
           oauth2_token_command: [oauth2-token, m365]}
    rules: [{name: r, text: hi}]
""")
    me, work = config.mailboxes
    assert me.smtp is not None
    assert me.smtp.oauth2_token_command == ("oauth2-token", "gmail")
    assert me.smtp.password is None
    assert work.smtp is not None
    assert work.smtp.oauth2_token_command == ("oauth2-token", "m365")


def test_smtp_with_both_a_password_and_a_token_command_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("""
smtp: {host: s.example, username: me, password_env: P, oauth2_token_command: [tok]}
mailboxes: [{name: a, address: a@example.org, rules: [{name: r, text: hi}]}]
""", "c.yaml")
    assert any("smtp.oauth2_token_command: expected either a password key or "
               "oauth2_token_command, found 'both'" in p for p in caught.value.problems)


def test_smtp_credentials_without_a_username_are_refused() -> None:
    """Without a username no AUTH is tried: a password would be silently unused."""
    with pytest.raises(ConfigError) as caught:
        parse_config("""
smtp: {host: s.example, oauth2_token_command: [tok]}
mailboxes: [{name: a, address: a@example.org, rules: [{name: r, text: hi}]}]
""", "c.yaml")
    assert any("smtp.username: expected a user name to log in with" in p
               for p in caught.value.problems)

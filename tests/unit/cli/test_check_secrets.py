"""`awayd check` reads every secret source and warns about rules that already ended."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from awayd.cli.main import main

SECRET = "s3cret-never-printed"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def config_with(imap_secret: str, smtp_secret: str, extra_mailbox: str = "") -> str:
    return f"""\
smtp:
  host: smtp.example.org
  username: awayd
  {smtp_secret}
mailboxes:
  - name: alice
    address: alice@example.org
    imap:
      host: imap.example.org
      username: alice
      {imap_secret}
    rules: [{{name: r, text: hi}}]
{extra_mailbox}"""


def test_every_unreadable_secret_is_reported_in_one_pass_with_mailbox_key_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("AWAYD_TEST_UNSET", raising=False)
    failing = tmp_path / "fail.sh"
    failing.write_text(f"#!/bin/sh\necho {SECRET}\necho {SECRET} >&2\nexit 4\n", encoding="utf-8")
    failing.chmod(0o755)
    path = write(tmp_path, config_with(
        "password_credential: imap-alice.pass", "password_file: smtp.pass", f"""\
  - name: bob
    address: bob@example.org
    imap: {{host: imap.example.org, username: bob, password_env: AWAYD_TEST_UNSET}}
    smtp: {{host: smtp2.example.org, username: bob, oauth2_token_command: [{failing}]}}
    rules: [{{name: r, text: hi}}]
"""))
    assert main(["check", "--config", str(path)]) == 78
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 4, err
    assert lines[0].startswith(f"{path}: smtp.password_file: every mailbox without its own smtp: "
                               f"password file {tmp_path / 'smtp.pass'}: cannot read")
    assert lines[0].endswith("(line 4, column 3)")
    assert lines[1].startswith(f"{path}: mailboxes[0].imap.password_credential: mailbox alice: "
                               "credential imap-alice.pass: $CREDENTIALS_DIRECTORY is not set")
    assert lines[1].endswith("(line 11, column 7)")
    assert lines[2].startswith(f"{path}: mailboxes[1].imap.password_env: mailbox bob: environment "
                               "variable $AWAYD_TEST_UNSET is not set")
    assert lines[3].startswith(f"{path}: mailboxes[1].smtp.oauth2_token_command: mailbox bob: "
                               f"password command {failing}: exited with status 4")
    assert SECRET not in err


def test_readable_secrets_pass_and_are_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "awayd_imap-alice.pass").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "smtp.pass").write_text(SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    path = write(tmp_path, config_with("password_credential: imap-alice.pass",
                                       "password_file: smtp.pass"))
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "OK, 1 mailbox(es)" in out
    assert SECRET not in out + err


def test_password_command_is_run_by_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "ran"
    command = f"[{sys.executable}, -c, \"open('{marker}', 'w').write('x'); print('pw')\"]"
    path = write(tmp_path, config_with(f"password_command: {command}", f"password_command: {command}"))
    assert main(["check", "--config", str(path)]) == 0
    assert marker.exists()


def test_unreadable_ca_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_text("pw\n", encoding="utf-8")
    path = write(tmp_path, config_with("password_file: pw\n      ca_file: missing-ca.pem",
                                       "password_file: pw"))
    assert main(["check", "--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert f"{path}: mailboxes[0].imap.ca_file: ca_file {tmp_path / 'missing-ca.pem'}: cannot load" in err


def test_a_rule_that_already_ended_is_a_warning_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, """\
mailboxes:
  - name: alice
    address: alice@example.org
    rules:
      - name: summer
        when: {from: 2020-07-01, until: 2020-07-31}
        text: hi
      - name: always
        text: hi
""")
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == (f"warning: {path}: mailboxes[0].rules[0].when.until: rule summer of mailbox "
                   "alice ended on 2020-07-31: it will never answer again (line 6, column 34)\n")
    assert "summer" in out

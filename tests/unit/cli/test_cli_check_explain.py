"""Tests for `awayd check` and `awayd explain`: exit codes, output and the JSON contract (§8)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from awayd.cli.main import main

AT = "2026-12-22T10:00:00+01:00"

CONFIG = """
state: {path: state.db}
mailboxes:
  - name: alice
    address: alice@example.org
    aliases: [alice.smith@example.org]
    display_name: Alice Smith
    timezone: Europe/Paris
    language: fr
    rules:
      - name: holidays
        when: {from: 2026-12-20, until: 2027-01-04}
        reply_to: Bob Martin <bob@example.org>
        text: "Bonjour {{ sender.first_name }}, je reviens le {{ rule.until | date }}."
        translations:
          en: {text: "Hello {{ sender.first_name }}, back on {{ rule.until | date }}."}
  - name: support
    address: support@example.org
    rules: [{name: ack, kind: acknowledgement, text: "Reçu (réf. {{ ticket }})."}]
"""

LUNCH = (b"Return-Path: <bob@example.net>\r\nFrom: Bob Martin <bob@example.net>\r\n"
         b"To: alice@example.org\r\nSubject: Lunch\r\nMessage-ID: <lunch.1@example.net>\r\n"
         b"\r\nOn se voit demain ?\r\n")
BULK = LUNCH.replace(b"Subject: Lunch", b"Precedence: bulk\r\nSubject: Lunch")
SUPPORT = LUNCH.replace(b"To: alice@example.org", b"To: support@example.org")

TOP_KEYS = {"file", "mailbox", "decision", "reason", "rule", "detail", "reply"}
REPLY_KEYS = {"envelope_from", "envelope_to", "from", "to", "subject", "language", "headers",
              "text", "html"}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def messages(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "b-bulk.eml").write_bytes(BULK)
    (folder / "a-lunch.eml").write_bytes(LUNCH)
    (folder / "notes.txt").write_text("not a message", encoding="utf-8")
    return folder


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_check_prints_a_summary_and_exits_0(config: Path, capsys) -> None:
    assert main(["check", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == f"{config}: OK, 2 mailbox(es), state {config.parent / 'state.db'} (sqlite)"
    assert "mailbox alice: alice@example.org (aliases alice.smith@example.org)" in lines
    assert "mailbox support: support@example.org" in lines
    assert "  sub-addresses such as alice+x@example.org are this mailbox too" in lines
    assert any(line.startswith("  time zone Europe/Paris, language fr, local time ")
               for line in lines)
    assert any(line.startswith("  rule holidays (absence, audience everyone, interval ")
               and "languages fr, en" in line for line in lines)
    assert any(line.startswith("  rule ack (acknowledgement") and line.endswith("active now")
               for line in lines)
    assert err == ""


def test_check_reads_awayd_config_from_the_environment(config: Path, capsys,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWAYD_CONFIG", str(config))
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith(f"{config}: OK")


def test_check_of_the_corpus_config(capsys) -> None:
    corpus = Path(__file__).parents[2] / "data" / "config.yaml"
    assert main(["check", "--config", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{corpus}: OK, 1 mailbox(es)")
    for rule in ("quotes", "night-desk", "team-only", "holidays"):
        assert f"  rule {rule} (" in out


def test_invalid_config_exits_78_with_every_error_on_stderr(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""
mailboxes:
  - name: alice
    address: alice@example.org
    timezone: Mars/Olympus
    colour: blue
    rules:
      - name: r
        interval: soon
        text: "{{ oops"
""", encoding="utf-8")
    assert main(["check", "--config", str(bad)]) == 78
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{bad}: mailboxes[0].") for line in lines)
    assert any(".colour: expected one of the known keys" in line for line in lines)
    assert any(".timezone: expected an IANA time zone" in line for line in lines)
    assert any(".rules[0].interval: expected a duration" in line for line in lines)
    assert any(".rules[0].text: expected a valid template" in line for line in lines)


def test_missing_config_exits_78(tmp_path: Path, capsys) -> None:
    assert main(["check", "--config", str(tmp_path / "absent.yaml")]) == 78
    assert "absent.yaml: cannot read the configuration" in capsys.readouterr().err


def test_template_that_cannot_render_is_a_check_failure(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mailboxes: [{name: a, address: a@example.org, rules: [{name: r, "
                   "text: '{{ sender.nickname }}'}]}]\n", encoding="utf-8")
    assert main(["check", "--config", str(bad)]) == 78
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}: mailboxes[0].rules[0].text: 'awayd.core.templates.SenderVars "
                          "object' has no attribute 'nickname' (line 1, column 65)")


def test_explain_json_prints_one_object_per_file_with_the_contract_fields(
    config: Path, messages: Path, capsys
) -> None:
    lunch, bulk = messages / "a-lunch.eml", messages / "b-bulk.eml"
    code = main(["explain", "--config", str(config), "--at", AT, "--json", str(lunch), str(bulk)])
    assert code == 0
    out, err = capsys.readouterr()
    assert err == ""
    reply, skip = json_lines(out)
    assert set(reply) == TOP_KEYS
    assert reply["file"] == str(lunch)
    assert reply["mailbox"] == "alice"
    assert (reply["decision"], reply["reason"], reply["rule"]) == ("reply", "reply", "holidays")
    assert isinstance(reply["detail"], str)
    body = reply["reply"]
    assert isinstance(body, dict)
    assert set(body) == REPLY_KEYS
    assert body["envelope_from"] == ""
    assert body["envelope_to"] == "bob@example.net"
    assert body["to"] == "Bob Martin <bob@example.net>"
    assert body["from"] == "Alice Smith <alice@example.org>"
    assert body["subject"] == "Auto: Lunch"
    assert body["language"] == "fr"
    assert body["html"] is None
    assert body["text"] == "Bonjour Bob, je reviens le 4 janvier 2027.\n"
    headers = body["headers"]
    assert isinstance(headers, dict)
    assert headers["Auto-Submitted"] == "auto-replied"
    assert headers["In-Reply-To"] == "<lunch.1@example.net>"
    assert headers["Reply-To"] == "Bob Martin <bob@example.org>"
    assert set(skip) == TOP_KEYS
    assert (skip["decision"], skip["reason"], skip["rule"], skip["reply"]) == \
        ("skip", "precedence", None, None)


def test_explain_without_json_says_why_in_words(config: Path, messages: Path, capsys) -> None:
    code = main(["explain", "--config", str(config), "--at", AT, str(messages / "b-bulk.eml"),
                 str(messages / "a-lunch.eml")])
    assert code == 0
    out = capsys.readouterr().out
    assert f"{messages / 'b-bulk.eml'}: SKIP (precedence)" in out
    assert f"{messages / 'a-lunch.eml'}: REPLY (reply)" in out
    assert "    Auto-Submitted: auto-replied" in out
    assert "    Bonjour Bob, je reviens le 4 janvier 2027." in out


def test_explain_unreadable_file_exits_65_and_still_evaluates_the_others(
    config: Path, messages: Path, capsys
) -> None:
    missing = messages / "missing.eml"
    code = main(["explain", "--config", str(config), "--at", AT, "--json",
                 str(messages / "a-lunch.eml"), str(missing), str(messages / "b-bulk.eml")])
    assert code == 65
    out, err = capsys.readouterr()
    assert [obj["file"] for obj in json_lines(out)] == [str(messages / "a-lunch.eml"),
                                                        str(messages / "b-bulk.eml")]
    assert str(missing) in err
    assert "cannot read" in err


def test_explain_reads_stdin_for_dash(config: Path, capsys,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(LUNCH)))
    assert main(["explain", "--config", str(config), "--at", AT, "--json", "-"]) == 0
    (obj,) = json_lines(capsys.readouterr().out)
    assert obj["file"] == "-"
    assert obj["decision"] == "reply"


def test_explain_without_files_reads_stdin(config: Path, capsys,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(BULK)))
    assert main(["explain", "--config", str(config), "--at", AT, "--json"]) == 0
    (obj,) = json_lines(capsys.readouterr().out)
    assert (obj["file"], obj["reason"]) == ("-", "precedence")


def test_explain_expands_a_directory_to_its_eml_files_in_name_order(
    config: Path, messages: Path, capsys
) -> None:
    assert main(["explain", "--config", str(config), "--at", AT, "--json", str(messages)]) == 0
    files = [obj["file"] for obj in json_lines(capsys.readouterr().out)]
    assert files == [str(messages / "a-lunch.eml"), str(messages / "b-bulk.eml")]


def test_explain_mailbox_option_picks_the_mailbox(config: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "support.eml"
    path.write_bytes(SUPPORT)
    assert main(["explain", "--config", str(config), "--at", AT, "--json", "--mailbox",
                 "support", str(path)]) == 0
    (obj,) = json_lines(capsys.readouterr().out)
    assert (obj["mailbox"], obj["rule"], obj["decision"]) == ("support", "ack", "reply")


def test_explain_defaults_to_the_first_mailbox(config: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "support.eml"
    path.write_bytes(SUPPORT)
    assert main(["explain", "--config", str(config), "--at", AT, "--json", str(path)]) == 0
    (obj,) = json_lines(capsys.readouterr().out)
    assert (obj["mailbox"], obj["reason"]) == ("alice", "not-addressed")


def test_explain_unknown_mailbox_exits_2(config: Path, messages: Path, capsys) -> None:
    code = main(["explain", "--config", str(config), "--mailbox", "bob", str(messages)])
    assert code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "no mailbox named 'bob'" in err
    assert "alice, support" in err


def test_explain_at_is_the_evaluation_time(config: Path, messages: Path, capsys) -> None:
    lunch = str(messages / "a-lunch.eml")
    assert main(["explain", "--config", str(config), "--at", "2026-11-02T10:00:00", "--json",
                 lunch]) == 0
    (obj,) = json_lines(capsys.readouterr().out)
    assert (obj["reason"], obj["rule"]) == ("no-rule", None)


def test_explain_bad_at_is_a_usage_error(config: Path, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["explain", "--config", str(config), "--at", "next tuesday", "-"])
    assert caught.value.code == 2
    assert "expected an ISO 8601 time" in capsys.readouterr().err


def test_explain_with_invalid_config_exits_78(tmp_path: Path, messages: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("mailboxes: []\n", encoding="utf-8")
    assert main(["explain", "--config", str(bad), str(messages)]) == 78
    assert "mailboxes: expected a list with at least one mailbox" in capsys.readouterr().err


def test_python_m_awayd_check_runs_as_a_process(config: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    done = subprocess.run([sys.executable, "-m", "awayd", "check", "--config", str(config)],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{config}: OK, 2 mailbox(es)")


def test_python_m_awayd_check_exits_78_on_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("colour: blue\nmailboxes: []\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    done = subprocess.run([sys.executable, "-m", "awayd", "check", "--config", str(bad)],
                          capture_output=True, text=True, env=env, check=False, timeout=120)
    assert done.returncode == 78
    assert len(done.stderr.splitlines()) == 2


POISON = LUNCH.replace(b"Subject: Lunch", b"Subject: =?utf-8?q?caf=E9?=")


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "text"])
def test_explain_writes_valid_utf8_for_a_latin1_byte_labelled_utf8(
    config: Path, tmp_path: Path, as_json: bool
) -> None:
    path = tmp_path / "poison.eml"
    path.write_bytes(POISON)
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}  # even where the locale cannot say é
    done = subprocess.run(
        [sys.executable, "-m", "awayd", "explain", "--config", str(config), "--at", AT,
         *(["--json"] if as_json else []), str(path)],
        capture_output=True, env=env, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode("utf-8")  # strict: raises on anything but valid UTF-8
    assert "Auto: café" in text
    if as_json:
        assert json.loads(text)["reply"]["subject"] == "Auto: café"

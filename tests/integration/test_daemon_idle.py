"""The real daemon against servers whose IDLE never speaks, or that offer no IDLE at all."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon import Daemons, mailbox, message, to_one, write_config
from tests.integration.dovecot import DOMAIN, Dovecot, free_port
from tests.integration.imapproxy import ImapProxy
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def folder_idle(listen: str) -> dict[str, float]:
    """{mailbox: awayd_folder_idle value} for INBOX, scraped from /metrics."""
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as response:
        text = response.read().decode("utf-8")
    return {s.labels["mailbox"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "awayd_folder_idle" and s.labels["folder"] == "INBOX"}


def wait_until(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.05)


def test_mail_is_answered_when_the_server_never_announces_it_during_idle(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    """Without an active check, such mail waited for the 25-minute IDLE renewal."""
    with ImapProxy(dovecot.imap_port, drop_idle_news=True) as proxy:
        config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, mailboxes=[
            mailbox("alice", mail_user, dovecot, port=proxy.port, poll_interval="1s")])
        d = daemons.start(config)
        d.wait_watching()
        wait_until(lambda: proxy.idles >= 1, "IDLE")
        dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
        d.wait_for("reply.sent", recipient="bob@example.net")
        assert proxy.dropped >= 1  # the server's announcement was withheld: the check found it
        dovecot.deliver(mail_user, message("carol@example.com", mail_user), "carol@example.com")
        d.wait_for("reply.sent", recipient="carol@example.com")
        assert d.stop() == 0
    assert [m.rcpt_tos for m in smtp_sink.messages] == [("bob@example.net",), ("carol@example.com",)]


def test_a_server_without_idle_is_polled_logged_once_and_shown_in_metrics(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    other = dovecot.add_user(f"u-idle-{time.time_ns()}@{DOMAIN}")
    with ImapProxy(dovecot.imap_port, hide_idle=True) as proxy:
        config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, metrics=listen, mailboxes=[
            mailbox("plain", mail_user, dovecot, port=proxy.port, poll_interval="0.2s"),
            mailbox("idling", other, dovecot)])
        d = daemons.start(config)
        d.wait_watching(folders=2)
        (told,) = d.wait_for("imap.idle_unsupported")
        assert (told["mailbox"], told["folder"]) == ("plain", "INBOX")
        assert folder_idle(listen) == {"plain": 0.0, "idling": 1.0}

        dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
        d.wait_for("reply.sent", mailbox="plain")
        proxy.cut()  # a reconnect says the same thing again: not logged again
        d.wait_for("imap.reconnected", mailbox="plain")
        dovecot.deliver(mail_user, message("carol@example.com", mail_user), "carol@example.com")
        d.wait_for("reply.sent", mailbox="plain", recipient="carol@example.com")
        assert len(d.events("imap.idle_unsupported")) == 1
        assert proxy.idles == 0
        assert d.stop() == 0
    assert len(to_one(smtp_sink.messages, "bob@example.net")) == 1

"""Scrape /metrics and /healthz of the real daemon after it decided a few real messages."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon import Daemons, mailbox, message, write_config
from tests.integration.dovecot import Dovecot, free_port
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode("utf-8")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_healthz_reflect_the_decisions_made(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path
) -> None:
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path / "awayd.yaml", sink=smtp_sink, metrics=listen,
                          mailboxes=[mailbox("alice", mail_user, dovecot)])
    d = daemons.start(config)
    d.wait_watching()
    dovecot.deliver(mail_user, message("bob@example.net", mail_user), "bob@example.net")
    dovecot.deliver(mail_user, message("bob@example.net", mail_user, "Again"), "bob@example.net")
    dovecot.deliver(mail_user, message("news@example.net", mail_user, headers={
        "List-Id": "News <news.example.net>"}), "news@example.net")
    dovecot.deliver(mail_user, message("mailer-daemon@example.net", mail_user, "Undelivered"), "")
    d.wait_for("message.processed", count=4)
    d.wait_for("reply.sent")

    status, text = get(f"http://{listen}/metrics")
    assert status == 200
    found = samples(text)
    box = (("mailbox", "alice"),)

    def skips(reason: str) -> float:
        return found[("awayd_skips_total", (("mailbox", "alice"), ("reason", reason)))]

    assert found[("awayd_replies_sent_total", box)] == 1
    assert found[("awayd_messages_seen_total", box)] == 4
    assert skips("already-replied") == 1
    assert skips("list") == 1
    assert skips("null-sender") == 1
    assert found[("awayd_replies_failed_total", box)] == 0
    assert found[("awayd_outbox_depth", ())] == 0
    assert found[("awayd_up", ())] == 1
    assert 0 <= time.time() - found[("awayd_last_check_timestamp_seconds", box)] < 60
    assert not [name for name, _labels in found if name.endswith("_created")]
    assert found[("awayd_poll_interval_seconds", box)] > 0

    assert get(f"http://{listen}/healthz") == (200, "ok\n")
    assert get(f"http://{listen}/nothing")[0] == 404
    assert d.stop() == 0

"""Fixtures shared by the daemon tests: started daemons are always stopped, a one-mailbox config."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.daemon import Daemons, mailbox, write_config
from tests.integration.dovecot import Dovecot
from tests.integration.smtpsink import SmtpSink


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """Start `awayd run` processes through this; any still running at the end is killed."""
    with Daemons(tmp_path) as made:
        yield made


@pytest.fixture
def config(tmp_path: Path, dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink) -> Path:
    """A config with one mailbox, `alice`, for a fresh Dovecot user, replying to the sink."""
    return write_config(tmp_path / "awayd.yaml", sink=smtp_sink,
                        mailboxes=[mailbox("alice", mail_user, dovecot)])

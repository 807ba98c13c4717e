"""Shared fixtures: a private Dovecot (one per session) and an aiosmtpd sink (one per test).

Without Dovecot (or without root) the tests that use it are skipped, unless
AWAYD_REQUIRE_DOVECOT=1, as in CI, turns the skip into a failure.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, NoReturn

import pytest
from hypothesis import settings

from tests.integration.dovecot import DOMAIN, Dovecot, unavailable_reason
from tests.integration.smtpsink import SmtpSink

if TYPE_CHECKING:
    from tests.integration.postgres import Postgres

# No per-example deadline: a deadline is a timing assertion, and CI machines are shared.
settings.register_profile("awayd", deadline=None)
settings.load_profile("awayd")

#: Every test skipped for want of Dovecot is reported at this one place, so `pytest -ra`
#: prints one line with a count instead of a line per test.
_SKIP_PREFIX = "no private dovecot: "


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and _SKIP_PREFIX in str(longrepr[2]):
        report.longrepr = (__file__, _FIXTURE_LINE, longrepr[2])


def _unavailable(require_env: str, reason: str, skip_prefix: str) -> NoReturn:
    """Skip for a server this machine lacks, or fail when `require_env`=1 (as in CI)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{require_env}=1 but {reason}", pytrace=False)
    pytest.skip(skip_prefix + reason)


_FIXTURE_LINE = sys._getframe().f_lineno + 4  # the `def dovecot` line below


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The session's Dovecot on 127.0.0.1 (IMAP, IMAPS with `cert_path`, LMTP); password "pw"."""
    reason = unavailable_reason()
    if reason is not None:
        _unavailable("AWAYD_REQUIRE_DOVECOT", reason, _SKIP_PREFIX)
    server = Dovecot.create()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> str:
    """A fresh address on the session's Dovecot, so each test starts with an empty INBOX."""
    if not dovecot.running:  # a restart test that failed half-way must not take the rest down
        dovecot.start()
    return dovecot.add_user(f"u-{uuid.uuid4().hex[:12]}@{DOMAIN}")


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP sink on a free 127.0.0.1 port, recording every accepted message."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's private PostgreSQL on 127.0.0.1 (trust auth, user `awayd`).

    Skipped without the server binaries, unless AWAYD_REQUIRE_POSTGRES=1 (as in CI)."""
    from tests.integration.postgres import Postgres, unavailable_reason  # noqa: PLC0415

    reason = unavailable_reason()
    if reason is not None:
        _unavailable("AWAYD_REQUIRE_POSTGRES", reason, "no private postgresql: ")
    server = Postgres.create()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    if not postgres.running:  # a restart test that failed half-way must not take the rest down
        postgres.start()
    return postgres.new_database()

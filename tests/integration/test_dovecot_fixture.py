"""The Dovecot fixture: a partial install is one skip reason, not an error per test."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.integration.daemon import ROOT
from tests.integration.dovecot import missing_packages


def executable(path: Path) -> None:
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_missing_protocol_binaries_name_their_debian_packages(tmp_path: Path) -> None:
    assert missing_packages([tmp_path]) == ["dovecot-imapd", "dovecot-lmtpd"]
    executable(tmp_path / "lmtp")
    assert missing_packages([tmp_path]) == ["dovecot-imapd"]
    executable(tmp_path / "imap")
    executable(tmp_path / "imap-login")
    assert missing_packages([tmp_path / "nowhere", tmp_path]) == []


def test_without_imapd_the_integration_tests_skip_with_one_reason(tmp_path: Path) -> None:
    executable(tmp_path / "lmtp")  # dovecot-lmtpd present, dovecot-imapd missing
    env = {k: v for k, v in os.environ.items() if k != "AWAYD_REQUIRE_DOVECOT"}
    env["AWAYD_DOVECOT_LIBEXEC"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/integration/test_imap.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert " error" not in out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, out
    assert "dovecot-imapd missing" in skipped[0]

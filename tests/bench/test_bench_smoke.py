"""bench/run --smoke completes against a private Dovecot and counts replies exactly (no timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.dovecot import libexec_dirs, missing_packages

ROOT = Path(__file__).resolve().parents[2]


def _unavailable() -> str | None:
    # The same conditions as bench.testbed.unavailable_reason; tests do not import bench code.
    if not any(os.access(p, os.X_OK) for p in ("/usr/sbin/dovecot", "/usr/bin/dovecot")):
        return "dovecot is not installed"
    if not Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so").exists():
        return "Pigeonhole (dovecot-sieve) is not installed"
    if not Path("/usr/lib/dovecot/modules/lib22_push_notification_lua_plugin.so").exists():
        return "Dovecot's Lua push_notification plugin is not installed (dovecot-core)"
    missing = missing_packages(libexec_dirs())
    if missing:
        return f"dovecot is only partly installed: {', '.join(missing)} missing"
    if os.geteuid() != 0:
        return "a private dovecot needs root"
    return None


@pytest.mark.integration
def test_smoke_benchmark_completes_with_exact_reply_counts(tmp_path: Path) -> None:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"AWAYD_REQUIRE_DOVECOT=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    proc = subprocess.run(
        [str(ROOT / "bench" / "run"), "--smoke", "--out", str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable}, cwd=ROOT, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "latest-smoke.json").read_text())
    raw = result["raw"]
    assert set(raw) == {"burst", "latency", "push", "pushscale", "scale", "catchup", "engine",
                        "quality"}
    settings = result["settings"]
    for run in raw["burst"]:
        for who in ("pigeonhole", "awayd"):
            assert run[who]["replies"] == run[who]["distinct_recipients"] == settings["burst"]
            assert run[who]["exact"]
    for run in raw["latency"]:
        for contender in ("pigeonhole", "awayd_idle", "awayd_poll"):
            assert run[contender]["replies"] == settings["latency"]
    for run in raw["push"]:
        for contender in ("pigeonhole", "awayd_push"):
            assert run[contender]["replies"] == settings["latency"]
        assert run["awayd_push"]["swept"] == 1  # the replies came from events, not the sweep
    for run in raw["pushscale"]:
        assert run["mailboxes"] == settings["push_mailboxes"]
        assert run["replies"] == run["distinct_recipients"] == settings["push_deliveries"]
        assert run["delivered"] == settings["push_deliveries"]
        assert run["exact"]
    for run in raw["scale"]:
        assert run["mailboxes"] == settings["mailboxes"]
        assert run["replies"] == settings["scale_samples"]
    for run in raw["catchup"]:
        assert run["decided"] == run["replies"] == run["distinct_recipients"] == settings["catchup"]
    assert raw["engine"]["messages"] > 0
    assert raw["quality"]["sets"]["machine/relay"]["total"] >= 300
    assert result["all_exact"]
    assert all(check["ok"] for check in result["checks"])


@pytest.mark.integration
def test_hosts_benchmark_completes_with_exact_reply_counts(tmp_path: Path, postgres: object) -> None:
    """bench.hosts at a tiny size: SQLite, PostgreSQL with one host and with three (no timings)."""
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"AWAYD_REQUIRE_DOVECOT=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.hosts", "--burst", "12", "--mailboxes", "3", "--conns", "2",
         "--runs", "1", "--no-failover", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [out] = tmp_path.glob("hosts-*.json")
    result = json.loads(out.read_text())
    for setup in ("sqlite_1", "pg_1", "pg_3"):
        [run] = result["runs"][setup]
        assert run["answered"] == run["replies"] == 12
        assert run["exact"]

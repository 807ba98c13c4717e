"""A private Dovecot 2.3 with LMTP and Pigeonhole on 127.0.0.1 for the benchmarks.

Built on the tests' Dovecot test bed (tests/integration/dovecot.py: finding Dovecot, the mail
user, ports, process groups, the push set-up). Any address is a user (static passdb/userdb, password
"pw"), so a fresh address is a fresh, empty mailbox. Limits are sized for `max_conn`
concurrent IMAP sessions. Needs root, like the Debian master.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

# One Dovecot test bed for tests and benchmarks (bench/run runs from the repository root): the
# process plumbing and the push set-up are the tests' own; this instance is sized for a
# thousand sessions and runs Pigeonhole for the baseline.
from tests.integration.dovecot import (
    HOST,
    PASSWORD,
    die_with_parent,
    end_group,
    ensure_mail_user,
    find_dovecot,
    free_port,
    listening,
    mail_users_config,
)
from tests.integration.dovecot import unavailable_reason as dovecot_unavailable_reason
from tests.integration.dovecotpush import (
    MASTER_USER,
    master_config,
    push_config,
    push_unavailable_reason,
)

__all__ = ["HOST", "MASTER_USER", "PASSWORD", "Dovecot", "InotifyLimit", "die_with_parent",
           "end_group", "free_port", "listening", "raise_fd_limit", "unavailable_reason"]

DOMAIN = "bench.example.org"
SENDER_DOMAIN = "senders.example.net"  # .test is refused by awayd's invalid-sender guard
SIEVE_PLUGIN = Path("/usr/lib/dovecot/modules/lib90_sieve_plugin.so")
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
VACATION = ('require ["vacation"];\n'
            'vacation :days 1 :subject "Out of office" "I am away until Monday. (baseline)";\n')


def unavailable_reason() -> str | None:
    """Why the benchmark cannot run here, or None when it can."""
    if (reason := dovecot_unavailable_reason()) is not None:
        return reason
    if not SIEVE_PLUGIN.exists() or shutil.which("sievec") is None:
        return "Pigeonhole is not installed (apt-get install dovecot-sieve)"
    return push_unavailable_reason()


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by Dovecot and awayd)."""
    import resource  # noqa: PLC0415 - Unix only, like the rest

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class InotifyLimit:
    """Dovecot's imap processes all run as one uid; past fs.inotify.max_user_instances (128
    by default) IDLE silently falls back to polling every mailbox_idle_check_interval (30 s).
    Raised for the run and put back afterwards."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.before: int | None = None
        self.now: int | None = None

    def __enter__(self) -> InotifyLimit:
        with contextlib.suppress(OSError, ValueError):
            self.before = self.now = int(INOTIFY_INSTANCES.read_text())
            if self.before < self.wanted:
                INOTIFY_INSTANCES.write_text(f"{self.wanted}\n")
                self.now = int(INOTIFY_INSTANCES.read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.before is not None and self.now != self.before:
            with contextlib.suppress(OSError):
                INOTIFY_INSTANCES.write_text(f"{self.before}\n")


class Dovecot:
    """One private instance (IMAP, LMTP with Sieve) whose replies go to `submission_port`."""

    def __init__(self, submission_port: int, max_conn: int = 1100,
                 push: tuple[str, str] | None = None) -> None:
        binary = find_dovecot()
        if binary is None:
            raise RuntimeError("dovecot is not installed")
        self.binary = binary
        # Not a 0700 temp dir: Dovecot's auth process (user `dovecot`) must traverse it.
        self.dir = Path(tempfile.mkdtemp(prefix="awayd-bench-dovecot-"))
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.submission_port = submission_port
        self.max_conn = max_conn
        self.conf_path = self.dir / "dovecot.conf"
        self.password_file = self.dir / "imap.pass"
        self.uid, self.gid = ensure_mail_user()
        self._proc: subprocess.Popen[bytes] | None = None
        for sub in ("run", "state", "log", "home"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.dir / "log", 0o755)
        os.chown(self.dir / "home", self.uid, self.gid)
        os.chmod(self.dir / "home", 0o755)
        self.password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        os.chmod(self.password_file, 0o600)
        #: (url, token): deliveries POST to awayd through contrib/dovecot; a master user logs in
        self.push = push
        self.master_password_file = self.dir / "master.pass"
        config = self._config()
        if push is not None:
            config += master_config(self.dir) + push_config(self.dir, *push)
        self.conf_path.write_text(config, encoding="utf-8")

    def start(self, timeout: float = 20.0) -> None:
        with (self.dir / "log" / "master.out").open("ab") as out:
            self._proc = subprocess.Popen(  # output to a file: children would hold a pipe open
                [self.binary, "-F", "-c", str(self.conf_path)], stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,  # noqa: PLW1509
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"dovecot exited at start:\n{self.log_tail()}")
            if listening(self.imap_port) and listening(self.lmtp_port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer within {timeout:g} s:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        end_group(proc.pid)  # start_new_session: the group id is the master's pid

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def master_pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for name in ("dovecot.log", "master.out"):
            path = self.dir / "log" / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)[-chars:]

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip()

    # -- users -----------------------------------------------------------------------------

    def new_user(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}@{DOMAIN}"

    def install_vacation(self, user: str, script: str = VACATION) -> None:
        """Give `user` the Pigeonhole vacation script (precompiled, owned by the mail uid)."""
        home = self.dir / "home" / user.lower()
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, self.uid, self.gid)
        path = home / ".dovecot.sieve"
        path.write_text(script, encoding="utf-8")
        subprocess.run(["sievec", "-c", str(self.conf_path), "-u", user, str(path)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for made in (path, home / ".dovecot.svbin"):
            if made.exists():
                os.chown(made, self.uid, self.gid)

    def lmtp(self) -> smtplib.LMTP:
        return smtplib.LMTP(HOST, self.lmtp_port, timeout=30)

    def _config(self) -> str:
        d, uid, gid, n = self.dir, self.uid, self.gid, self.max_conn
        return f"""\
# private benchmark instance written by bench/testbed.py; not /etc/dovecot
instance_name = awayd-bench-{self.imap_port}
base_dir = {d}/run
state_dir = {d}/state
listen = 127.0.0.1
protocols = imap lmtp
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_cache_size = 1M
{mail_users_config(d, uid, gid, max_userip=n)}
default_process_limit = {n}
default_client_limit = {2 * n}
default_vsz_limit = 512M
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = {2 * n}
}}
service imap {{
  process_limit = {n}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
  process_min_avail = 1
}}
service auth {{
  client_limit = {4 * n}
}}
service anvil {{
  client_limit = {4 * n}
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  client_limit = {4 * n}
}}
protocol imap {{
  mail_max_userip_connections = {n}
}}
lda_mailbox_autocreate = yes
postmaster_address = postmaster@{DOMAIN}
hostname = mx.{DOMAIN}
submission_host = {HOST}:{self.submission_port}
lmtp_save_to_detail_mailbox = no
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@{DOMAIN}
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
"""

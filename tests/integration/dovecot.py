"""A private Dovecot 2.3 (IMAP, IMAPS, LMTP) on 127.0.0.1, run as a child process for tests.

Recipe and pitfalls: /work/shared/DOVECOT.md. The instance never reads /etc/dovecot; users
are full addresses (any address exists) with the password "pw"; mail is stored under the
unprivileged user `awaydmail` (created if missing). Needs root, like the Debian master.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from awayd.config.model import ImapSettings, SecretSource, Security, TlsSettings
from tests.integration.dovecotpush import (  # noqa: F401 (MASTER_USER, push_unavailable_reason: re-exported)
    MASTER_USER,
    master_config,
    push_config,
    push_unavailable_reason,
)

HOST = "127.0.0.1"
DOMAIN = "example.org"
PASSWORD = "pw"
MAIL_USER = "awaydmail"
#: Well-known users; tests that need an empty mailbox take a fresh address (add_user).
DEFAULT_USERS = ("alice@example.org", "bob@example.org", "carol@example.org")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def find_dovecot() -> str | None:
    """Path of the dovecot master binary (Debian puts it in /usr/sbin, often off PATH)."""
    for candidate in (shutil.which("dovecot"), "/usr/sbin/dovecot"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


#: Where distributions put Dovecot's protocol binaries (Debian, Fedora, a source install).
LIBEXEC_DIRS = ("/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot")
#: The binaries the fixture's protocols need, and the Debian package of each.
PROTOCOL_BINARIES = (("imap", "dovecot-imapd"), ("imap-login", "dovecot-imapd"),
                     ("lmtp", "dovecot-lmtpd"))


def libexec_dirs() -> tuple[str, ...]:
    """LIBEXEC_DIRS, or the colon-separated $AWAYD_DOVECOT_LIBEXEC (another layout, and tests)."""
    given = os.environ.get("AWAYD_DOVECOT_LIBEXEC")
    return tuple(given.split(":")) if given else LIBEXEC_DIRS


def missing_packages(libexec_dirs: Sequence[str | Path] = LIBEXEC_DIRS) -> list[str]:
    """Debian packages whose protocol binaries are in none of `libexec_dirs` (a partial install)."""
    missing: list[str] = []
    for binary, package in PROTOCOL_BINARIES:
        found = any(os.access(Path(d) / binary, os.X_OK) for d in libexec_dirs)
        if not found and package not in missing:
            missing.append(package)
    return missing


def unavailable_reason() -> str | None:
    """Why a private Dovecot cannot run here, or None when it can."""
    if find_dovecot() is None:
        return "dovecot is not installed (apt-get install dovecot-imapd dovecot-lmtpd)"
    missing = missing_packages(libexec_dirs())
    if missing:
        return (f"dovecot is only partly installed: {', '.join(missing)} missing "
                f"(apt-get install {' '.join(missing)})")
    if os.geteuid() != 0:
        return "a private dovecot needs root (its master switches to the mail uid)"
    if shutil.which("openssl") is None:
        return "openssl is not installed (needed for the IMAPS test certificate)"
    return None


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def ensure_mail_user() -> tuple[int, int]:
    try:
        return _ids(MAIL_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", MAIL_USER],
            check=True,
        )  # fmt: skip
        return _ids(MAIL_USER)


def _group_alive(group: int) -> bool:
    """True while a process of `group` still runs; zombies do not count (under a PID 1 that
    does not reap, as in some containers, they would never go away)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        state, pgrp = fields[0], int(fields[2])
        if pgrp == group and state not in ("Z", "X"):
            return True
    return False


def end_group(group: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM every process left in `group`, SIGKILL after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(group):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + timeout
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)


def die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when its parent (pytest, the bench) dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _ids(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def mail_users_config(d: Path | str, uid: int, gid: int, *, max_userip: int) -> str:
    """The part of a private Dovecot's config both test beds (tests and bench) share: one system
    user owns every maildir under `d`/home, any user name logs in with PASSWORD, one INBOX
    namespace."""
    return f"""\
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
mail_fsync = never
mail_max_userip_connections = {max_userip}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%Lu allow_all_users=yes
}}
namespace inbox {{
  inbox = yes
  separator = /
}}"""


class Dovecot:
    """One private instance: its directory, ports, users, and the process while it runs."""

    def __init__(self, directory: Path, binary: str, *,
                 mechanisms: str = "plain login xoauth2 oauthbearer",
                 push: tuple[str, str] | None = None) -> None:
        self.dir = directory
        self.binary = binary
        self.host = HOST
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.lmtp_port = free_port()
        self.cert_path = directory / "tls" / "cert.pem"
        self.key_path = directory / "tls" / "key.pem"
        self.conf_path = directory / "dovecot.conf"
        #: Holds PASSWORD; imap_settings() points SecretSource(file=...) at it.
        self.password_file = directory / "imap.pass"
        #: The master password (written by master_config), for `master_password_file`.
        self.master_password_file = directory / "master.pass"
        #: The SASL mechanisms offered (AUTH=...); LOGIN works whatever they are.
        self.mechanisms = mechanisms
        #: (url, token): deliveries call awayd's push endpoint through contrib/dovecot.
        self.push = push
        #: Addresses handed out by add_user (every address works; this is for reference).
        self.users: set[str] = set()
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepare()

    @classmethod
    def create(cls, **options: Any) -> Dovecot:
        """Write a fresh instance under the system temp dir (not started)."""
        binary = find_dovecot()
        if binary is None:
            raise RuntimeError("dovecot is not installed")
        # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, and Dovecot's auth process
        # (user `dovecot`) must traverse every directory down to its files.
        directory = Path(tempfile.mkdtemp(prefix="awayd-dovecot-"))
        return cls(directory, binary, **options)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the master in the foreground (-F) and wait until IMAP and LMTP answer."""
        if self.running:
            return
        with (self.dir / "log" / "master.out").open("ab") as out:
            # Output goes to a file: the master's children would keep a pipe open forever.
            self._proc = subprocess.Popen(
                [self.binary, "-F", "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - no threads run Dovecot's fork
                # Its own process group: the imap, log and stats processes outlive the master,
                # and stop() ends them through the group, never by name.
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"dovecot exited at start:\n{self.log_text()[-3000:]}")
            if self._greets() and listening(self.lmtp_port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer within {START_TIMEOUT:g} s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM the master (by PID), then what is left of its process group; wait for both.

        Dovecot's master leaves running IMAP sessions alone when it exits; a restart test
        wants what a real server restart does, so every session ends here too (with a
        `* BYE` when the process gets to say it).
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        group = proc.pid  # start_new_session: the group id is the master's pid
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        end_group(group)
        deadline = time.monotonic() + STOP_TIMEOUT
        ports = (self.imap_port, self.imaps_port, self.lmtp_port)
        while any(listening(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        """stop() then start(): same ports, directory and mail; every session is cut."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop and delete the instance directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((HOST, self.imap_port), timeout=1.0) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    # -- users and mail --------------------------------------------------------------------

    def add_user(self, address: str) -> str:
        """Return `address` as a user with the password PASSWORD.

        Every address exists (static passdb and userdb): Dovecot re-reads a passwd-file at most
        once a second, which made users added in quick succession unknown. A fresh address
        is a fresh, empty mailbox.
        """
        address = address.lower()
        if "@" not in address:
            raise ValueError(f"users are full addresses, got {address!r}")
        self.users.add(address)
        return address

    def deliver(self, rcpt: str, raw: bytes, mail_from: str = "sender@example.net") -> None:
        """Deliver over LMTP, so Return-Path, Delivered-To and Received are Dovecot's own."""
        with smtplib.LMTP(HOST, self.lmtp_port, timeout=10) as lmtp:
            refused = lmtp.sendmail(mail_from, [rcpt], raw)
        if refused:
            raise RuntimeError(f"LMTP refused {rcpt}: {refused}")

    def append(
        self,
        user: str,
        messages: Iterable[bytes],
        *,
        folder: str = "INBOX",
        flags: Sequence[bytes] = (),
        batch: int = 250,
    ) -> None:
        """Store many messages fast (MULTIAPPEND, `batch` per command); no LMTP headers."""
        pending = [{"msg": raw, "flags": tuple(flags)} for raw in messages]
        with self.imap_client(user) as client:
            for start in range(0, len(pending), batch):
                client.multiappend(folder, pending[start : start + batch])

    def imap_client(self, user: str, password: str = PASSWORD) -> Any:
        """A logged-in imapclient.IMAPClient over plain IMAP; use it as a context manager."""
        client = IMAPClient(HOST, port=self.imap_port, ssl=False, timeout=10)
        try:
            client.login(user, password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def imap_settings(
        self,
        user: str,
        *,
        security: Security = "none",
        ca_file: Path | None = None,
        verify: bool = True,
        password_file: Path | None = None,
        host: str = HOST,
        idle: bool = True,
        timeout: float = 10.0,
    ) -> ImapSettings:
        """ImapSettings for `user` on this instance; the port follows `security`.

        The password is read (by awayd's own resolver) from `password_file`, by default a
        file holding PASSWORD.
        """
        port = self.imaps_port if security == "tls" else self.imap_port
        password = SecretSource(file=password_file or self.password_file)
        return ImapSettings(
            host=host,
            port=port,
            tls=TlsSettings(security=security, verify=verify, ca_file=ca_file),
            username=user,
            password=password,
            poll_interval=timedelta(seconds=0.1),
            idle=idle,
            timeout=timeout,
        )

    def log_text(self) -> str:
        """Dovecot's log plus the master's own output, for assertions and failure reports."""
        parts = []
        for name in ("dovecot.log", "master.out"):
            path = self.dir / "log" / name
            if path.exists():
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    # -- setup -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        uid, gid = ensure_mail_user()
        for sub in ("run", "state", "log", "home", "tls"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        # The auth process runs as `dovecot` and needs +x on DIR.
        os.chmod(self.dir, 0o755)
        os.chmod(self.dir / "log", 0o755)
        os.chown(self.dir / "home", uid, gid)
        os.chmod(self.dir / "home", 0o755)
        for user in DEFAULT_USERS:
            self.add_user(user)
        self.password_file.write_text(PASSWORD + "\n", encoding="utf-8")
        os.chmod(self.password_file, 0o600)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(self.key_path), "-out", str(self.cert_path)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.chmod(self.key_path, 0o600)
        config = self._config(uid, gid)
        if self.push is not None:
            config += push_config(self.dir, *self.push)
        self.conf_path.write_text(config, encoding="utf-8")

    def _config(self, uid: int, gid: int) -> str:
        d = self.dir
        return f"""\
# private test instance written by tests/integration/dovecot.py; not /etc/dovecot
instance_name = awayd-test-{self.imap_port}
base_dir = {d}/run
state_dir = {d}/state
listen = 127.0.0.1
protocols = imap lmtp
log_path = {d}/log/dovecot.log
info_log_path = {d}/log/dovecot.log

ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}
disable_plaintext_auth = no
# Dovecot 2.3 checks an XOAUTH2/OAUTHBEARER token like a password: the token "pw" logs in.
auth_mechanisms = {self.mechanisms}
# Tests try wrong passwords: no cache, no extra delay after a failure.
auth_cache_size = 0
auth_failure_delay = 0

{mail_users_config(d, uid, gid, max_userip=1000)}
{master_config(d)}

default_process_limit = 300
default_client_limit = 600
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service stats {{
  client_limit = 1200
}}
service anvil {{
  client_limit = 1200
  # No auth penalty: after one wrong password every login from 127.0.0.1 would wait 4 s.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service auth {{
  client_limit = 1200
}}

lda_mailbox_autocreate = yes
postmaster_address = postmaster@{DOMAIN}
hostname = mx.{DOMAIN}
lmtp_save_to_detail_mailbox = no
"""

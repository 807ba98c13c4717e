"""A private PostgreSQL cluster on 127.0.0.1, made by initdb in a temp directory, for tests.

Debian's server binaries (package `postgresql`) live in /usr/lib/postgresql/N/bin, off PATH.
initdb refuses to run as root, so the cluster belongs to the unprivileged mail user of the
Dovecot fixture (created if missing). Every test gets a fresh database (`new_database`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.integration.dovecot import HOST, MAIL_USER, ensure_mail_user, free_port

START_TIMEOUT = 30.0
SUPERUSER = "awayd"


def find_bin(name: str) -> str | None:
    """The newest Debian PostgreSQL binary `name` (initdb, pg_ctl), else one on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    if found:
        return found[-1]
    return shutil.which(name)


def unavailable_reason() -> str | None:
    """Why a private PostgreSQL cannot run here, or None when it can."""
    if find_bin("initdb") is None or find_bin("pg_ctl") is None:
        return "the PostgreSQL server is not installed (apt-get install postgresql)"
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster is made as the mail user, which needs root"
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError:
        return "psycopg is not installed (pip install 'awayd[postgres]')"
    return None


class Postgres:
    """One cluster: `start()`, `new_database()`, `stop()` (a restart keeps the data), `cleanup()`."""

    def __init__(self, root: Path, port: int, *, durable: bool = False) -> None:
        self.durable = durable  # fsync as in production (benchmarks); tests go without
        self.root = root
        self.data = root / "data"
        self.port = port
        self.host = HOST
        self.running = False

    @classmethod
    def create(cls, *, durable: bool = False) -> Postgres:
        uid, gid = ensure_mail_user()
        root = Path(tempfile.mkdtemp(prefix="awayd-pg-"))
        os.chown(root, uid, gid)
        server = cls(root, free_port(), durable=durable)
        initdb = find_bin("initdb")
        assert initdb is not None
        server._as_owner([initdb, "-D", str(server.data), "-U", SUPERUSER, "--auth=trust",
                          "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        return server

    def _as_owner(self, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        entry = pwd.getpwnam(MAIL_USER)
        return subprocess.run(argv, user=entry.pw_uid, group=entry.pw_gid, check=True,
                              capture_output=True, text=True, cwd=self.root,
                              env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                              timeout=START_TIMEOUT, **kw)  # type: ignore[call-overload]

    @property
    def admin_url(self) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def start(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        # fsync off: the tests kill awayd, never the machine; the socket stays in our dir
        options = (f"-c listen_addresses={HOST} -p {self.port} -c unix_socket_directories={self.root}"
                   " -c max_connections=200")
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._as_owner([pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                        "-t", str(int(START_TIMEOUT)), "-o", options, "start"])
        self.running = True

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        assert pg_ctl is not None
        self._as_owner([pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])
        self.running = False

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        import psycopg  # noqa: PLC0415

        name = f"t_{uuid.uuid4().hex[:12]}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.admin_url, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return self.url(name)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def cleanup(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

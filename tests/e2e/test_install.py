"""The README's mail-host install, run as written in a scratch root, up to a reply at the sink.

The commands come from the README's code blocks, so the README cannot drift from what is
tested. Absolute paths of the install (/etc/awayd, /opt/awayd, ...) are moved under a scratch
root; the system user `awayd` is real. systemd is not running here, so the `systemctl` lines
are replaced by what they do: `daemon-reload` by `systemd-analyze verify` of the installed
unit, `enable --now` by starting the unit's ExecStart= the way systemd would (as User=, from
`/`, its StateDirectory= created, its LoadCredential= directory copied to
$CREDENTIALS_DIRECTORY under systemd's names), `reload` by SIGHUP.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.daemon import message, parse_events
from tests.integration.dovecot import PASSWORD, Dovecot
from tests.integration.smtpsink import SmtpSink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Installing on a mail host"
MOVED = ("/etc/awayd", "/opt/awayd", "/usr/local/bin", "/etc/systemd/system", "/var/lib/awayd")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
                                     "out")
WAIT = 60.0


def readme_blocks() -> list[list[str]]:
    """The shell blocks of the README's mail-host section, one command per line."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [[line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
            for block in blocks]


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the install runs as root (useradd, install -o, runuser)"
    for tool in ("useradd", "runuser", "install"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            return f"{tool} is not installed"
    done = subprocess.run(["python3", "-c", "import ensurepip, venv"], env={"PATH": SYSTEM_PATH},
                          capture_output=True, check=False)
    if done.returncode != 0:
        return "python3 -m venv does not work here (Debian: apt-get install python3-venv)"
    return None


class Install:
    """A scratch root that stands for `/` during the install; the commands run as root."""

    def __init__(self, root: Path, clone: Path, dovecot: Dovecot, sink: SmtpSink, user: str) -> None:
        self.root = root
        self.clone = clone
        self.dovecot = dovecot
        self.sink = sink
        self.mail_user = user
        self.log = root / "install.log"
        self.service: subprocess.Popen[bytes] | None = None
        self.service_log = root / "service.log"
        for sub in ("usr/local/bin", "etc/systemd/system", "var/lib", "run"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    def env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "LANG", "LC_"))}
        return {**keep, "PATH": f"{self.root}/usr/local/bin:{SYSTEM_PATH}", "HOME": "/root", **extra}

    def moved(self, text: str) -> str:
        for prefix in MOVED:
            text = re.sub(rf"(?<![\w/.-]){re.escape(prefix)}(?=/|\s|$|')", f"{self.root}{prefix}", text)
        return text

    def sh(self, line: str, **env: str) -> subprocess.CompletedProcess[str]:
        # The system user is real, with its real home; every other path moves.
        command = line if line.startswith("useradd") else self.moved(line)
        command = command.replace("/path/to/awayd", str(self.clone))
        typed = f"{PASSWORD}\n" if "/dev/stdin" in command else ""  # what the admin types
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=self.clone,
                              env=self.env(**env), capture_output=True, text=True, check=False,
                              input=typed, timeout=600)
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"$ {command}\n{done.stdout}{done.stderr}[exit {done.returncode}]\n")
        return done

    # -- what the steps the README leaves to the reader or to systemd do --------------------

    def edit_config(self) -> None:
        """"then edit it": this host's mailbox on the test Dovecot, replies to the sink."""
        path = self.root / "etc/awayd/config.yaml"
        assert "alice" in path.read_text(encoding="utf-8")  # the example was installed
        data = {
            "state": {"path": f"{self.root}/var/lib/awayd/state.db", "retry_base": "1s"},
            "smtp": {"host": self.sink.host, "port": self.sink.port, "security": "none"},
            "mailboxes": [{
                "name": "alice", "address": self.mail_user, "timezone": "Europe/Paris",
                "imap": {"host": self.dovecot.host, "port": self.dovecot.imap_port,
                         "security": "none", "username": self.mail_user,
                         "password_credential": "imap-alice.pass", "poll_interval": "0.1s"},
                "rules": [{"name": "away", "text": "Hello {{ sender.first_name }}, I am away."}],
            }],
        }
        with path.open("w", encoding="utf-8") as out:  # in place: mode and owner stay
            yaml.safe_dump(data, out, sort_keys=False)

    def unit(self) -> dict[str, list[str]]:
        text = (self.root / "etc/systemd/system/awayd.service").read_text(encoding="utf-8")
        keys: dict[str, list[str]] = {}
        for line in text.splitlines():
            if line and line[0] not in "#;[" and "=" in line:
                key, _, value = line.partition("=")
                keys.setdefault(key.strip(), []).append(value.strip())
        return keys

    def daemon_reload(self) -> None:
        """Install the unit with moved paths, and have systemd-analyze check it when it can."""
        path = self.root / "etc/systemd/system/awayd.service"
        path.write_text(self.moved(path.read_text(encoding="utf-8")), encoding="utf-8")
        analyze = shutil.which("systemd-analyze", path=SYSTEM_PATH)
        if analyze is None:
            return
        done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                              check=False, env=self.env(), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    def start(self) -> None:
        """`systemctl enable --now awayd`: what systemd does for this unit's [Service]."""
        unit = self.unit()
        account = pwd.getpwnam(unit["User"][-1])
        state = self.root / "var/lib" / unit["StateDirectory"][-1]
        state.mkdir(exist_ok=True)
        os.chown(state, account.pw_uid, account.pw_gid)
        state.chmod(int(unit["StateDirectoryMode"][-1], 8))
        credentials = self.root / "run/credentials/awayd.service"
        credentials.mkdir(parents=True)
        for spec in unit.get("LoadCredential", []):
            name, _, source = spec.partition(":")
            sources = sorted(Path(source).iterdir()) if Path(source).is_dir() else [Path(source)]
            for item in sources:
                # A directory is loaded file by file, each named ID_FILENAME (systemd.exec(5)).
                target = credentials / (f"{name}_{item.name}" if Path(source).is_dir() else name)
                shutil.copyfile(item, target)
                os.chown(target, account.pw_uid, account.pw_gid)
                target.chmod(0o400)
        os.chown(credentials, account.pw_uid, account.pw_gid)
        credentials.chmod(0o500)
        env = {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": account.pw_dir,
               "USER": account.pw_name, "LOGNAME": account.pw_name, "SHELL": account.pw_shell,
               "CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(state),
               "CONFIGURATION_DIRECTORY": str(self.root / "etc/awayd")}
        argv = shlex.split(unit["ExecStart"][-1])
        with self.service_log.open("ab") as log:
            self.service = subprocess.Popen(argv, cwd="/", env=env, user=account.pw_uid,
                                            group=account.pw_gid, extra_groups=[],
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)

    def events(self, name: str) -> list[dict[str, object]]:
        text = self.service_log.read_text(encoding="utf-8", errors="replace")
        return [e for e in parse_events(text) if e.get("event") == name]

    def wait_for(self, name: str, count: int = 1) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.events(name)) < count:
            assert self.service is not None
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {name} from the service (exit {self.service.poll()}):\n"
                                     + self.service_log.read_text(errors="replace")[-4000:])
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.service is None or self.service.poll() is not None:
            return None if self.service is None else self.service.returncode
        self.service.send_signal(signal.SIGTERM)
        try:
            return self.service.wait(20)
        except subprocess.TimeoutExpired:
            self.service.kill()
            return self.service.wait()


@pytest.fixture
def install(dovecot: Dovecot, smtp_sink: SmtpSink, mail_user: str) -> Iterator[Install]:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"AWAYD_REQUIRE_DOVECOT=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    # Not pytest's tmp_path (0700 under /tmp/pytest-of-root): the awayd user must reach it.
    root = Path(tempfile.mkdtemp(prefix="awayd-install-"))
    root.chmod(0o755)
    clone = root / "src" / "awayd"
    shutil.copytree(REPO, clone, ignore=COPY_IGNORE)
    made = Install(root, clone, dovecot, smtp_sink, mail_user)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_readme_mail_host_install_ends_in_a_service_that_answers(install: Install) -> None:
    setup, admin = readme_blocks()
    assert any(line.startswith("systemctl enable --now awayd") for line in setup)
    for line in setup:
        if line.startswith("useradd") and _user_exists("awayd"):
            continue  # made by an earlier run of this test; useradd refuses an existing user
        if line == "systemctl daemon-reload":
            install.daemon_reload()
            continue
        if line.startswith("systemctl enable --now"):
            install.start()
            continue
        done = install.sh(line)
        assert done.returncode == 0, f"{line}\n{install.log.read_text(errors='replace')[-4000:]}"
        if "config.example.yaml" in line:
            install.edit_config()

    check = install.log.read_text(encoding="utf-8")
    assert f"imap {install.dovecot.host}:{install.dovecot.imap_port} (none)" in check
    config = install.root / "etc/awayd/config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert stat.S_IMODE((install.root / "etc/awayd/credentials").stat().st_mode) == 0o700

    install.wait_for("checkpoint.created")
    install.dovecot.deliver(install.mail_user, message("bob@example.net", install.mail_user,
                                                       name="Bob Martin"), "bob@example.net")
    [reply] = install.sink.wait_for(1, timeout=WAIT)
    assert reply.rcpt_tos == ("bob@example.net",)
    assert b"Hello Bob, I am away." in reply.content

    for line in admin:
        if line.startswith("journalctl"):
            continue
        if line.startswith("systemctl reload"):
            assert install.service is not None
            install.service.send_signal(signal.SIGHUP)
            install.wait_for("config.reloaded")
            continue
        done = install.sh(line, AWAYD_CONFIG=str(config))
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    assert "replies sent 1" in install.log.read_text(encoding="utf-8")  # `awayd report` as awayd
    assert install.stop() == 0
    awayd_uid = pwd.getpwnam("awayd").pw_uid
    state_files = list((install.root / "var/lib/awayd").iterdir())
    assert state_files
    assert all(p.stat().st_uid == awayd_uid for p in state_files), state_files


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True

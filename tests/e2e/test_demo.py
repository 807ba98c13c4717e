"""End to end: `awayd demo` runs pymap, an SMTP sink and the real daemon, and shows its decisions."""

from __future__ import annotations

import os
import queue
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

from imapclient import IMAPClient

ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "awayd", "demo"]
COLLEAGUE = "marc.dubois@partner.example"
DECISION = re.compile(r"^  (REPLY|SKIP) +(\S+)  (\S+)  \((.*)\)  \[([\w-]+)\]$", re.MULTILINE)
CONFIG = re.compile(r"^  config (\S+)/config\.yaml$", re.MULTILINE)
DAEMON_PID = re.compile(r"awayd run \(pid (\d+)\)")


def decisions(output: str) -> dict[str, tuple[str, str, str]]:
    """sample name → (REPLY|SKIP, sender, reason)."""
    return {m[5]: (m[1], m[2], m[3]) for m in DECISION.finditer(output)}


def assert_cleaned_up(output: str) -> None:
    folder = CONFIG.search(output)
    assert folder is not None, output
    assert not Path(folder[1]).exists(), f"temporary folder {folder[1]} left behind"
    pid = DAEMON_PID.search(output)
    assert pid is not None, output
    try:
        os.kill(int(pid[1]), 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"the daemon (pid {pid[1]}) is still running")


def test_demo_answers_the_colleague_once_and_skips_every_machine(tmp_path: Path) -> None:
    """Run from a folder holding a package named `awayd` of its own: the demo's processes must
    still run the installed awayd, not whatever `python -m` finds in the current directory."""
    decoy = tmp_path / "awayd"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the decoy awayd was imported')\n")
    (decoy / "__main__.py").write_text("raise SystemExit('the decoy awayd was run')\n")
    proc = subprocess.run([sys.executable, "-P", "-m", "awayd", "demo"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr

    seen = decisions(out)
    assert seen["colleague"] == ("REPLY", COLLEAGUE, "reply")
    assert seen["colleague-again"] == ("SKIP", COLLEAGUE, "already-replied")
    assert seen["newsletter"][0] == "SKIP"
    assert seen["newsletter"][2] in ("list", "bulk")
    assert seen["bounce"] == ("SKIP", "<>", "null-sender")
    assert seen["autoreply"][::2] == ("SKIP", "auto-submitted")
    assert seen["mailing-list"][::2] == ("SKIP", "list")
    assert len(DECISION.findall(out)) == 6

    replies = [line for line in out.splitlines() if line.startswith("  SMTP sink received a reply")]
    assert replies == [f"  SMTP sink received a reply: MAIL FROM:<> RCPT TO:<{COLLEAGUE}>"]
    assert f"      To: Marc Dubois <{COLLEAGUE}>" in out
    assert "      From: Alice Martin <alice@example.org>" in out
    assert "      Subject: Auto: Lunch on Thursday?" in out
    assert "      Auto-Submitted: auto-replied" in out
    assert "      Hello Marc," in out
    assert "All as expected." in out
    assert_cleaned_up(out)


class Lines:
    """The demo's stdout, line by line, read by a thread so waiting can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self.stdout = proc.stdout
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.stdout:
            self.lines.put(line)

    def all(self) -> str:
        """Everything, once the process has closed its stdout."""
        self.reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first line so far or to come that matches (the order of lines is not asserted)."""
        for line in self.seen:
            found = re.search(pattern, line)
            if found:
                return found
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.seen)}")


def test_demo_keep_takes_mail_by_imap_and_smtp_and_cleans_up_on_interrupt() -> None:
    with subprocess.Popen([*DEMO, "--keep"], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        out = Lines(proc)
        try:
            keep_session(proc, out)
        finally:
            if proc.poll() is None:
                proc.kill()
        text = out.all()
    assert proc.returncode == 0, text
    assert "Stopping the demo." in text
    assert_cleaned_up(text)


def keep_session(proc: subprocess.Popen[str], out: Lines) -> None:
    """Send mail the two ways the demo offers, then press Ctrl-C."""
    imap = out.wait_for(r"IMAP  host 127\.0\.0\.1  port (\d+)  no TLS  user (\S+)  password (\S+)")
    smtp = out.wait_for(r"SMTP  host 127\.0\.0\.1  port (\d+)")

    client = IMAPClient("127.0.0.1", int(imap[1]), ssl=False, timeout=10)
    client.login(imap[2], imap[3])
    client.append("INBOX", b"Return-Path: <zoe@client.example>\r\nFrom: Zoe <zoe@client.example>"
                  b"\r\nTo: alice@example.org\r\nSubject: Quote\r\n\r\nHello\r\n")
    client.logout()
    out.wait_for(r"^  REPLY zoe@client\.example  reply ")
    out.wait_for(r"RCPT TO:<zoe@client\.example>")

    with smtplib.SMTP("127.0.0.1", int(smtp[1]), timeout=10) as relay:
        relay.sendmail("yann@client.example", ["alice@example.org"],
                       b"From: yann@client.example\r\nTo: alice@example.org\r\n"
                       b"Subject: Hi\r\n\r\nHello\r\n")
    out.wait_for(r"^  REPLY yann@client\.example  reply ")
    out.wait_for(r"RCPT TO:<yann@client\.example>")

    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    proc.wait(timeout=30)

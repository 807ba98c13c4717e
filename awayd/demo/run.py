"""`awayd demo`: start the servers and the daemon, deliver the samples, print what happens."""

from __future__ import annotations

import contextlib
import importlib.util
import queue
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from types import FrameType
from typing import TextIO
from zoneinfo import ZoneInfo

from awayd.demo import show
from awayd.demo.daemon import Daemon, DaemonExited, LogEvent
from awayd.demo.samples import ADDRESS, SAMPLES, Sample, as_delivered, load
from awayd.demo.servers import DemoError, ImapServer, Mailer, Received, SmtpSink
from awayd.demo.settings import DemoSettings, away_dates, local_zone, write_config

READY_TIMEOUT_S = 30.0
STEP_TIMEOUT_S = 15.0
SETTLE_S = 0.3  # let the worker start polling after its checkpoint
SHOW_AFTER_S = 2.0  # a reply the daemon did not log as sent is shown anyway after this

Item = LogEvent | DaemonExited | Received


class Demo:
    """One demo run: its servers, the daemon, and what it has seen so far."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.items: queue.Queue[Item] = queue.Queue()
        self.decisions: dict[int, LogEvent] = {}
        self.labels: dict[int, str] = {}
        self.replies: list[Received] = []
        self.unshown: list[tuple[float, Received]] = []
        self.sent = 0
        self.ready = False
        self.stopping = False
        self.mailer: Mailer | None = None
        self.daemon: Daemon | None = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- events ---------------------------------------------------------------------------

    def handle(self, item: Item) -> None:
        if isinstance(item, Received):
            self._received(item)
        elif isinstance(item, DaemonExited):
            if not self.stopping:
                tail = self.daemon.output_tail() if self.daemon else ""
                raise DemoError(f"the daemon exited with code {item.code}; its output:\n{tail}")
        elif item.event == "message.processed":
            uid = int(item.fields.get("uid") or 0)
            self.decisions[uid] = item
            self.say(show.decision(item, self.labels.get(uid, "")))
        elif item.event == "reply.sent":
            self.sent += 1
            self.say(show.reply_sent(item))
            self._show_replies(item.get("recipient"))
        elif item.event == "checkpoint.created":
            self.ready = True
        else:
            line = show.problem(item)
            if line is not None:
                self.say(line)

    def _received(self, item: Received) -> None:
        if any(r.lower() == ADDRESS for r in item.rcpt_tos):
            # the sink is also Alice's MX: mail for her is stored as a delivery agent would
            self.say(show.inbound(item))
            if self.mailer is not None:
                data = as_delivered(item.message.as_bytes(), item.mail_from, datetime.now(UTC))
                try:
                    self.mailer.append(data)
                except Exception as err:
                    self.say(f"  !     could not store it in INBOX: {err}")
            return
        self.replies.append(item)
        self.unshown.append((time.monotonic(), item))

    def _show_replies(self, recipient: str | None = None, *, every: bool = False) -> None:
        """Print replies after the daemon's `reply.sent` (the sink sees them a bit earlier)."""
        late = float("inf") if every else time.monotonic() - SHOW_AFTER_S
        for entry in list(self.unshown):
            at, reply = entry
            if at < late or recipient in reply.rcpt_tos:
                self.unshown.remove(entry)
                self.say(show.reply(reply))

    def pump(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Handle events until `done()` (True) or the timeout (False); None waits forever."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done():
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(queue.Empty):
                self.handle(self.items.get(timeout=min(left, 0.5)))
            self._show_replies()
        self._show_replies()
        return True

    # --- the run --------------------------------------------------------------------------

    def run(self, folder: Path, keep: bool) -> int:
        with contextlib.ExitStack() as stack:
            try:
                return self._run(stack, folder, keep)
            finally:
                # a second Ctrl-C must not cut the cleanup short and orphan the servers
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        return 0  # unreachable; mypy cannot know that ExitStack does not swallow

    def _run(self, stack: contextlib.ExitStack[bool | None], folder: Path, keep: bool) -> int:
        missing = [m for m in ("pymap", "aiosmtpd") if importlib.util.find_spec(m) is None]
        if missing:
            raise DemoError(f"awayd demo needs {' and '.join(missing)}: pip install 'awayd[demo]'")
        password = secrets.token_urlsafe(12)
        imap = ImapServer(folder, ADDRESS, password)
        sink = SmtpSink(self.items.put)
        # callbacks run last-in first-out: the daemon stops first, while its servers are still up
        stack.callback(sink.stop)
        stack.callback(imap.stop)
        stack.callback(self._stop_daemon)
        imap.start()
        sink.start()
        zone = local_zone()
        today = datetime.now(ZoneInfo(zone)).date()
        settings = DemoSettings(folder, imap.port, sink.port, password, zone, *away_dates(today))
        write_config(settings)
        self.say(show.banner(settings, ADDRESS))
        self.daemon = Daemon(settings.config_path, self.items.put)
        self.daemon.start()
        self.say(f"  daemon: awayd run (pid {self.daemon.pid}); waiting for its first checkpoint")
        if not self.pump(lambda: self.ready, READY_TIMEOUT_S):
            raise DemoError("the daemon did not check its mailbox in time; its output:\n"
                            + self.daemon.output_tail())
        self.say("  daemon: checkpoint at UIDNEXT taken (mail already there is never answered)")
        self.pump(lambda: False, SETTLE_S)
        self.mailer = Mailer(imap.port, ADDRESS, password)
        stack.callback(self._close_mailer)
        code = self._samples()
        if not keep:
            return code
        self.say(show.keep_help(settings, ADDRESS))
        try:
            self.pump(lambda: False, None)
        except KeyboardInterrupt:
            self.say("\nStopping the demo.")
        return 0

    def _close_mailer(self) -> None:
        mailer, self.mailer = self.mailer, None
        if mailer is not None:
            mailer.close()

    def _samples(self) -> int:
        run = secrets.token_hex(4)
        wrong: list[str] = []
        reasons = [self._sample(sample, run, wrong) for sample in SAMPLES]
        self.pump(lambda: False, SETTLE_S)  # a stray second reply would show up here
        self._show_replies(every=True)
        expected_to = sorted({s.envelope_sender for s in SAMPLES if "reply" in s.expected})
        if [r.rcpt_tos for r in self.replies] != [(a,) for a in expected_to]:
            wrong.append(f"the SMTP sink should have received exactly one reply each for "
                         f"{', '.join(expected_to)}")
        self.say(show.summary(SAMPLES, reasons, len(self.replies), wrong))
        return 1 if wrong else 0

    def _sample(self, sample: Sample, run: str, wrong: list[str]) -> str | None:
        """Deliver one sample, wait for its decision (and reply); the reason, None if none came."""
        assert self.mailer is not None
        now = datetime.now(UTC)
        submitted = load(sample, now, run)
        seen = len(self.decisions)
        uid = self.mailer.append(as_delivered(submitted, sample.envelope_sender, now))
        if uid is not None:
            self.labels[uid] = sample.name
        self.say(show.delivered(sample, _from(submitted), _subject(submitted), uid))
        if not self.pump(lambda: self._decision(uid, seen) is not None, STEP_TIMEOUT_S):
            wrong.append(f"{sample.name}: no decision within {STEP_TIMEOUT_S:.0f}s")
            return None
        event = self._decision(uid, seen)
        reason = event.get("reason") if event is not None else None
        if reason not in sample.expected:
            wrong.append(f"{sample.name}: {reason}, expected {' or '.join(sample.expected)}")
        if reason == "reply":
            want = len(self.replies) + 1, self.sent + 1
            if not self.pump(lambda: (len(self.replies), self.sent) >= want, STEP_TIMEOUT_S):
                wrong.append(f"{sample.name}: no reply reached the SMTP sink")
        return reason

    def _decision(self, uid: int | None, seen: int) -> LogEvent | None:
        """The decision on a delivered message: by its UID, else the next one logged."""
        if uid is not None:
            return self.decisions.get(uid)
        return list(self.decisions.values())[-1] if len(self.decisions) > seen else None

    def _stop_daemon(self) -> None:
        self.stopping = True
        if self.daemon is not None:
            running = self.daemon.running
            code = self.daemon.stop()
            if running and code not in (0, None):
                self.say(f"  !     the daemon exited with code {code} while stopping")
            # print what it logged while stopping (a reply finished in flight, an error)
            with contextlib.suppress(DemoError):
                self.pump(self.items.empty, 0.5)
            self._show_replies(every=True)


def _from(data: bytes) -> str:
    return _header(data, "from")


def _subject(data: bytes) -> str:
    return _header(data, "subject")


def _header(data: bytes, name: str) -> str:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        key, _, value = line.decode("utf-8", "replace").partition(":")
        if key.lower() == name:
            return parseaddr(value.strip())[1] if name == "from" else value.strip()
    return ""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(keep: bool = False, out: TextIO | None = None) -> int:
    """Run the demo in a fresh temporary folder, removed at the end; SIGTERM acts as Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler), signal.signal(
        signal.SIGTERM, _interrupt)
    folder = Path(tempfile.mkdtemp(prefix="awayd-demo-"))
    try:
        return Demo(out or sys.stdout).run(folder, keep)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])

"""Fault injection against the real daemon, Dovecot and an SMTP sink: nothing lost, nothing doubled.

Each scenario delivers a burst over LMTP, breaks something, lets the daemon recover and
counts the replies per sender (tests/faults/harness.py). It fails on any drop and on any
duplicate outside the 250→commit window. The table is printed at the end of the run.
AWAYD_FAULT_SEED fixes the random kill points, AWAYD_FAULT_TRIALS the number of kills.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from awayd.pipeline import FAULT_ENV
from tests.faults.harness import (
    HangingServer,
    HoldingSink,
    Outcome,
    deliver_burst,
    fill,
    in_window,
    senders,
    tally,
    wait_settled,
)
from tests.integration.daemon import Daemon, Daemons, awayd, mailbox, state_path, write_config
from tests.integration.dovecot import Dovecot, free_port
from tests.integration.smtpsink import ReceivedMail, SmtpSink

pytestmark = pytest.mark.integration

EX_TEMPFAIL = 75
BURST = 5
KILL_BURST = 4
RELAY_DELAY_S = 0.1
#: Every burst sender is a new person: the hourly circuit breaker must not hide a drop.
NO_CAP = {"per_hour": 100_000, "per_day": 1_000_000}
#: After the last expected reply: long enough for several outbox passes (retry_base 0.5 s),
#: so a reply sent twice shows up before the count.
QUIET_S = 1.5


def make_config(tmp_path: Path, dovecot: Dovecot, user: str, sink: SmtpSink | HangingServer,
                smtp_timeout: str | None = None) -> Path:
    config = write_config(tmp_path / "awayd.yaml", sink=sink,  # type: ignore[arg-type]
                          mailboxes=[mailbox("alice", user, dovecot, max_replies=NO_CAP)])
    if smtp_timeout is not None:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data["smtp"]["timeout"] = smtp_timeout
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config


def finish(scenario: str, daemon: Daemon, expected: list[str], mails: list[ReceivedMail] | None,
           sinks: list[SmtpSink], config: Path, started: float, table: list[Outcome],
           window: set[str] | None = None, note: str = "",
           recovered_at: float | None = None) -> Outcome:
    """Wait for the replies, stop the daemon, count, record the row and assert on it.

    `recovered_at` (time.time() when the fault ended) adds to the note how long the queue
    took to drain after it.
    """
    state = state_path(config)

    def everything() -> list[ReceivedMail]:
        return [*(mails or []), *(m for s in sinks for m in s.messages)]

    wait_settled(everything, expected, state)
    if recovered_at is not None and everything():
        last = max(m.received_at for m in everything())
        note = f"{note}{'; ' if note else ''}last reply {last - recovered_at:.1f} s after recovery"
    time.sleep(QUIET_S)
    assert daemon.stop() == 0, daemon.log_text()[-3000:]
    outcome = tally(scenario, expected, everything(), state, window or set(), started, note)
    table.append(outcome)
    assert outcome.ok, outcome
    return outcome


def test_kill_9_at_random_points_of_bursts(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    seed = int(os.environ.get("AWAYD_FAULT_SEED") or time.time_ns() % 1_000_000)
    trials = int(os.environ.get("AWAYD_FAULT_TRIALS") or 30)
    print(f"kill -9 trials: {trials}, AWAYD_FAULT_SEED={seed}")
    rng = random.Random(seed)
    started = time.monotonic()
    # A relay taking 0.1 s per reply spreads a burst over about half a second, so timed kills
    # land before, inside and after the sends.
    sink = HoldingSink(delay=RELAY_DELAY_S)
    sink.start()
    try:
        config = make_config(tmp_path, dovecot, mail_user, sink)
        state = state_path(config)
        first = daemons.start(config)
        first.wait_watching()  # mail from now on is not backlog
        first.stop()
        expected: list[str] = []
        window: set[str] = set()
        kinds: dict[str, int] = {}
        for trial in range(trials):
            # A timer from the delivery, a timer from the first decision of the burst (inside
            # its sends), or exactly at a named point of the reply path.
            kind = rng.choice(["timer", "timer in burst", "after-record", "after-send"])
            kinds[kind] = kinds.get(kind, 0) + 1
            d = daemons.start(config, {FAULT_ENV: kind} if kind.startswith("after") else None)
            burst = senders(f"k{trial}", KILL_BURST)
            expected += burst
            if kind.startswith("timer"):
                d.wait_for("service.started")
                deliver_burst(dovecot, mail_user, burst)
                if kind == "timer":
                    time.sleep(rng.uniform(0.3, 1.6))
                else:
                    d.wait_for("message.processed", sender=burst[0])
                    time.sleep(rng.uniform(0.0, KILL_BURST * RELAY_DELAY_S))
                d.kill()
            else:  # may die at once, resending a reply the last kill left pending
                deliver_burst(dovecot, mail_user, burst)
                try:
                    code: int | None = d.wait_exit(timeout=30)
                except subprocess.TimeoutExpired:
                    code = None
                assert code == -signal.SIGKILL, (trial, kind, d.log_text()[-5000:])
            time.sleep(RELAY_DELAY_S + 0.1)  # a DATA in progress ends at the sink
            answered = {r for m in sink.messages for r in m.rcpt_tos} & set(burst)
            if len(answered) < len(burst):
                kinds["(burst left unfinished)"] = kinds.get("(burst left unfinished)", 0) + 1
            window |= in_window(state, sink.messages)
        last = daemons.start(config)
        note = f"seed {seed}; kills: " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        finish(f"kill -9 at random points ({trials} trials)", last, expected, None, [sink],
               config, started, fault_table, window, note)
    finally:
        sink.stop()


def test_smtp_down_then_up(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    started = time.monotonic()
    down = SmtpSink()  # not the fixture's: an aiosmtpd controller cannot start again
    down.start()
    config = make_config(tmp_path, dovecot, mail_user, down)
    d = daemons.start(config)
    d.wait_watching()
    down.stop()
    expected = senders("down", BURST)
    deliver_burst(dovecot, mail_user, expected)
    d.wait_for("smtp.send_deferred")
    d.wait_for("message.processed", count=BURST)
    back = SmtpSink(port=down.port)
    back.start()
    try:
        finish("SMTP down, then up", d, expected, None, [back], config, started, fault_table,
               recovered_at=time.time())
    finally:
        back.stop()


def test_smtp_4xx_then_ok(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    started = time.monotonic()
    config = make_config(tmp_path, dovecot, mail_user, smtp_sink)
    d = daemons.start(config)
    d.wait_watching()
    smtp_sink.fail_next(2 * BURST, 451)
    expected = senders("tempfail", BURST)
    deliver_burst(dovecot, mail_user, expected)
    finish("SMTP 4xx, then OK", d, expected, None, [smtp_sink], config, started, fault_table)
    assert len(d.events("smtp.send_deferred")) >= BURST


def test_smtp_5xx_is_recorded_failed_not_dropped(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    started = time.monotonic()
    config = make_config(tmp_path, dovecot, mail_user, smtp_sink)
    d = daemons.start(config)
    d.wait_watching()
    smtp_sink.fail_always(550)
    expected = senders("permfail", BURST)
    deliver_burst(dovecot, mail_user, expected)
    outcome = finish("SMTP 5xx (failed, logged)", d, expected, None, [smtp_sink], config, started,
                     fault_table)
    assert outcome.failed == BURST
    assert len(d.events("smtp.send_failed")) == BURST


def test_smtp_relay_that_hangs(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    started = time.monotonic()
    hang = HangingServer(free_port())
    config = make_config(tmp_path, dovecot, mail_user, hang, smtp_timeout="2s")
    back: SmtpSink | None = None
    try:
        d = daemons.start(config)
        d.wait_watching()
        expected = senders("hang", BURST)
        deliver_burst(dovecot, mail_user, expected)
        d.wait_for("smtp.send_deferred")
        d.wait_for("message.processed", count=BURST)  # decided while the relay hangs
        hang.stop()
        back = SmtpSink(port=hang.port)
        back.start()
        finish("SMTP relay hangs (2 s timeout)", d, expected, None, [back], config, started,
               fault_table, recovered_at=time.time())
    finally:
        hang.stop()
        if back is not None:
            back.stop()


def test_imap_server_restart_mid_burst(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    started = time.monotonic()
    config = make_config(tmp_path, dovecot, mail_user, smtp_sink)
    d = daemons.start(config)
    d.wait_watching()
    expected = senders("imap", BURST * 2)
    deliver_burst(dovecot, mail_user, expected[:BURST])
    try:
        dovecot.restart()
    finally:
        if not dovecot.running:
            dovecot.start()
    deliver_burst(dovecot, mail_user, expected[BURST:])
    finish("IMAP (Dovecot) restart mid-burst", d, expected, None, [smtp_sink], config, started,
           fault_table)


def test_second_daemon_on_the_same_state(
    dovecot: Dovecot, mail_user: str, smtp_sink: SmtpSink, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    started = time.monotonic()
    config = make_config(tmp_path, dovecot, mail_user, smtp_sink)
    d = daemons.start(config)
    d.wait_watching()
    second = daemons.start(config)
    try:
        code: int | None = second.wait_exit(timeout=15)
    except subprocess.TimeoutExpired:
        code = None  # it runs beside the first: the count below shows what that costs
    once = awayd("run", "--once", config=config)
    expected = senders("twin", BURST * 2)
    deliver_burst(dovecot, mail_user, expected)
    if code is None:
        second.stop()
    finish("second daemon on the same state", d, expected, None, [smtp_sink], config, started,
           fault_table, note=f"second `awayd run` exited {code}, `run --once` {once.returncode}")
    assert (code, once.returncode) == (EX_TEMPFAIL, EX_TEMPFAIL)


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of `size` at `directory` (root only), unmounted afterwards."""
    directory.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(directory)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if os.environ.get("AWAYD_REQUIRE_DOVECOT") == "1":
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def test_disk_full_while_a_reply_is_being_sent(
    dovecot: Dovecot, mail_user: str, daemons: Daemons, tmp_path: Path,
    fault_table: list[Outcome],
) -> None:
    """The state cannot commit `sent` after the relay's 250, nor record the next messages."""
    started = time.monotonic()
    sink = HoldingSink()
    sink.start()
    try:
        with small_tmpfs(tmp_path / "state", "8m") as volume:
            config = write_config(tmp_path / "awayd.yaml", sink=sink, state=volume / "state.db",
                                  mailboxes=[mailbox("alice", mail_user, dovecot,
                                                     max_replies=NO_CAP)])
            d = daemons.start(config)
            d.wait_watching()
            sink.hold()  # the relay takes the first reply's DATA and answers it later
            expected = senders("full", BURST)
            deliver_burst(dovecot, mail_user, expected[:1])
            d.wait_until(lambda: sink.held >= 1, "a reply in DATA")
            filler = fill(volume)
            deliver_burst(dovecot, mail_user, expected[1:])
            sink.release()  # the 250 arrives while nothing can be committed
            time.sleep(3.0)  # several outbox passes on a full disk
            filler.unlink()
            finish("disk full (state on a full tmpfs)", d, expected, None, [sink], config,
                   started, fault_table)
    finally:
        sink.stop()

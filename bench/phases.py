"""Burst and latency measurements: LMTP deliveries in, replies timed at the sink.

Every time is time.time() on this machine: the delivery start in the harness and the end of
DATA in the sink process, so the two are on one clock.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import smtplib
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from bench.daemon import Awayd, cpu_seconds, group_cpu_seconds, idle_cpu, memory, write_config
from bench.sink import Sink, check_replies
from bench.testbed import HOST, PASSWORD, SENDER_DOMAIN, Dovecot


def make_msg(sender: str, to: str, *, envelope: bool = False) -> bytes:
    """A small plain-text message a person would send; `envelope` prepends the headers LMTP
    would have added (for IMAP APPEND)."""
    top = f"Return-Path: <{sender}>\r\nDelivered-To: {to}\r\n" if envelope else ""
    return (f"{top}From: {sender}\r\nTo: {to}\r\nSubject: Lunch on Friday?\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{SENDER_DOMAIN}>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hi, are you there? Shall we have lunch on Friday?\r\n").encode()


def senders(tag: str, n: int) -> list[str]:
    return [f"p{tag}-{i}@{SENDER_DOMAIN}" for i in range(n)]


def pct(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def distribution_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    if not ms:
        return {}
    return {"p50": statistics.median(ms), "p95": pct(ms, 95), "p99": pct(ms, 99), "min": min(ms),
            "max": max(ms)}


def warm_up(dv: Dovecot, sink: Sink, rcpt: str, tag: str) -> None:
    """One delivery and its reply: compiles the script, opens the SMTP connection, loads code."""
    sender = f"w{tag}@{SENDER_DOMAIN}"
    with dv.lmtp() as lmtp:
        lmtp.sendmail(sender, [rcpt], make_msg(sender, rcpt))
    if not sink.collect([sender], timeout=30):
        raise RuntimeError(f"no reply to the warm-up message for {rcpt}")


# -- burst ---------------------------------------------------------------------------------

def burst(dv: Dovecot, sink: Sink, rcpt: str, n: int, conns: int, tag: str,
          cpu_pid: int | None = None) -> dict[str, Any]:
    """`n` messages from `n` senders over `conns` LMTP connections; replies/s = replies /
    (last reply at the sink - first delivery start)."""
    who = senders(tag, n)
    msgs = [(s, make_msg(s, rcpt)) for s in who]
    starts: list[float] = []
    errors: list[str] = []

    def deliver(chunk: list[tuple[str, bytes]]) -> None:
        try:
            with dv.lmtp() as lmtp:
                for sender, raw in chunk:
                    starts.append(time.time())
                    refused = lmtp.sendmail(sender, [rcpt], raw)
                    if refused:
                        errors.append(repr(refused))
        except (OSError, smtplib.SMTPException) as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=deliver, args=(msgs[i::conns],)) for i in range(conns)]
    cpu0 = _cpu(dv, cpu_pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = time.time()
    recs = sink.collect(who, timeout=120 + n / 10, quiet=30, linger=1.0)
    cpu1 = _cpu(dv, cpu_pid)
    first = min(starts)
    last = max((r["ts"] for r in recs), default=delivered)
    return {"n": n, "conns": conns, "deliver_s": delivered - first,
            "deliveries_per_s": n / (delivered - first), "span_s": last - first,
            "replies_per_s": len(recs) / (last - first), **check_replies(recs, who),
            "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0}, "errors": errors[:3]}


def _cpu(dv: Dovecot, pid: int | None) -> dict[str, float]:
    out = {"dovecot": group_cpu_seconds(dv.master_pid or 0)}
    if pid is not None:
        out["awayd"] = cpu_seconds(pid)
    return out


def burst_pigeonhole(dv: Dovecot, sink: Sink, n: int, conns: int, tag: str) -> dict[str, Any]:
    user = dv.new_user("ooo")
    dv.install_vacation(user)
    warm_up(dv, sink, user, tag)
    return burst(dv, sink, user, n, conns, tag)


def burst_awayd(dv: Dovecot, sink: Sink, work: Path, n: int, conns: int, tag: str) -> dict[str, Any]:
    user = dv.new_user("aw")
    daemon = Awayd(write_config(work / f"burst-{tag}.yaml", dv, sink.port, [user]),
                   work / f"burst-{tag}.log")
    try:
        daemon.wait_connected(1, timeout=30)
        warm_up(dv, sink, user, tag)
        return burst(dv, sink, user, n, conns, tag, cpu_pid=daemon.pid)
    finally:
        daemon.stop()


# -- latency -------------------------------------------------------------------------------

class IdleProbe(threading.Thread):
    """A plain imapclient session IDLEing on a mailbox: when Dovecot announces each delivery
    (EXISTS), which is the floor for any IDLE client."""

    def __init__(self, dv: Dovecot, user: str) -> None:
        super().__init__(name="idle-probe", daemon=True)
        self.dv, self.user = dv, user
        self.times: list[float] = []
        self.ready = threading.Event()
        self.halt = threading.Event()

    def run(self) -> None:
        client = IMAPClient(HOST, port=self.dv.imap_port, ssl=False, timeout=30)
        client.login(self.user, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        client.idle()
        self.ready.set()
        while not self.halt.is_set():
            for response in client.idle_check(timeout=0.5):
                if isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS":
                    self.times.append(time.time())
        with contextlib.suppress(Exception):
            client.idle_done()
            client.logout()

    def first_after(self, t0: float) -> float | None:
        return min((t for t in self.times if t >= t0), default=None)


#: Added to every gap, uniformly at random: a fixed cycle would lock onto a poll timer.
JITTER_S = 0.1


def latency(dv: Dovecot, sink: Sink, rcpt: str, n: int, gap: float, tag: str,
            probe: IdleProbe | None = None) -> dict[str, Any]:
    """`n` single deliveries, each waiting for its reply, then `gap` plus 0..JITTER_S seconds."""
    rng = random.Random(tag)
    lat: list[float] = []
    after: list[float] = []  # from the end of the LMTP transaction, when the message exists
    notify: list[float] = []
    lmtp_s: list[float] = []
    missing = 0
    lmtp = dv.lmtp()
    try:
        for sender in senders(tag, n):
            raw = make_msg(sender, rcpt)
            t0 = time.time()
            try:
                lmtp.sendmail(sender, [rcpt], raw)
            except smtplib.SMTPServerDisconnected:  # an idle LMTP session timed out
                lmtp = dv.lmtp()
                t0 = time.time()
                lmtp.sendmail(sender, [rcpt], raw)
            lmtp_s.append(time.time() - t0)
            recs = sink.collect([sender], timeout=15)
            if recs:
                lat.append(recs[0]["ts"] - t0)
                after.append(recs[0]["ts"] - t0 - lmtp_s[-1])
            else:
                missing += 1
            if probe is not None and (seen := probe.first_after(t0)) is not None:
                notify.append(seen - t0)
            time.sleep(gap + rng.uniform(0, JITTER_S))
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            lmtp.quit()
    out: dict[str, Any] = {"n": n, "replies": len(lat), "missing": missing,
                           "exact": missing == 0 and len(lat) == n,
                           "latency_ms": distribution_ms(lat), "after_lmtp_ms": distribution_ms(after),
                           "lmtp_ms": distribution_ms(lmtp_s)}
    if probe is not None:
        out["idle_notify_ms"] = distribution_ms(notify)
    return out


def latency_pigeonhole(dv: Dovecot, sink: Sink, n: int, gap: float, tag: str) -> dict[str, Any]:
    user = dv.new_user("ooo")
    dv.install_vacation(user)
    warm_up(dv, sink, user, tag)
    return latency(dv, sink, user, n, gap, tag)


def latency_awayd(dv: Dovecot, sink: Sink, work: Path, n: int, gap: float, tag: str, *,
                  idle: bool, cpu_window: float = 0.0) -> dict[str, Any]:
    """awayd watching one mailbox with IDLE (and an IDLE probe beside it) or fast NOOP polls.
    With `cpu_window`, its idle CPU share and memory are measured first (one-mailbox baseline)."""
    user = dv.new_user("lat")
    config = write_config(work / f"lat-{tag}.yaml", dv, sink.port, [user], idle=idle,
                          poll_interval="60s" if idle else "0.1s")
    daemon = Awayd(config, work / f"lat-{tag}.log")
    probe = IdleProbe(dv, user) if idle else None
    try:
        daemon.wait_connected(1, timeout=30)
        warm_up(dv, sink, user, tag)
        extra: dict[str, Any] = {}
        if cpu_window > 0:
            time.sleep(1.0)
            extra = {"idle_cpu": idle_cpu(daemon.pid, cpu_window), **memory(daemon.pid)}
        if probe is not None:
            probe.start()
            if not probe.ready.wait(10):
                raise RuntimeError("the IDLE probe did not start")
        result = latency(dv, sink, user, n, gap, tag, probe)
        return {**result, **extra}
    finally:
        if probe is not None:
            probe.halt.set()
            probe.join(5)
        daemon.stop()

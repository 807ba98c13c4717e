"""Open-loop deliveries: a fixed schedule at `rate` a second to random mailboxes over several
LMTP connections, each reply matched to its delivery at the sink by its unique sender.

Open loop: a delivery starts when the schedule says, whether or not earlier ones have been
answered, so a slow reply cannot thin out the load (a closed loop of one delivery at a time
waits for each reply and offers less load exactly when awayd is slow). A delivery waits for a
free connection only when every one of the `conns` is inside an LMTP transaction; that wait is
reported as the start lag.
"""

from __future__ import annotations

import contextlib
import queue
import random
import smtplib
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.phases import distribution_ms, make_msg
from bench.sink import Sink, check_replies
from bench.testbed import SENDER_DOMAIN, Dovecot

#: The first delivery is due this long after the connections are open.
LEAD_S = 0.5


@dataclass(frozen=True)
class Delivery:
    index: int
    sender: str  # unique: the reply to it is the reply to this delivery
    rcpt: str
    due: float  # time.time() at which the schedule starts it


def plan(users: list[str], count: int, rate: float, seed: int, tag: str,
         start: float) -> list[Delivery]:
    """`count` deliveries to mailboxes drawn with a seeded generator, one every 1/rate s."""
    rng = random.Random(seed)
    return [Delivery(i, f"ol{tag}-{i}@{SENDER_DOMAIN}", rng.choice(users), start + i / rate)
            for i in range(count)]


class _Connection(threading.Thread):
    """One LMTP connection taking deliveries off the shared queue until it reads None."""

    def __init__(self, dv: Dovecot, work: queue.Queue[Delivery | None],
                 began: dict[int, float], lmtp_s: dict[int, float], errors: list[str]) -> None:
        super().__init__(name="lmtp", daemon=True)
        self.dv, self.work, self.began, self.lmtp_s, self.errors = dv, work, began, lmtp_s, errors
        self.lmtp: smtplib.LMTP | None = dv.lmtp()

    def run(self) -> None:
        while (d := self.work.get()) is not None:
            raw = make_msg(d.sender, d.rcpt)
            for _attempt in range(2):
                try:
                    if self.lmtp is None:
                        self.lmtp = self.dv.lmtp()
                    t0 = time.time()
                    refused = self.lmtp.sendmail(d.sender, [d.rcpt], raw)
                    self.began[d.index], self.lmtp_s[d.index] = t0, time.time() - t0
                    if refused:
                        self.errors.append(repr(refused))
                    break
                except smtplib.SMTPServerDisconnected:  # an idle LMTP session timed out
                    self.lmtp = None
                except (OSError, smtplib.SMTPException) as err:
                    self.errors.append(f"{d.sender}: {err!r}")
                    self.lmtp = None
                    break
        if self.lmtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self.lmtp.quit()


def open_loop(dv: Dovecot, sink: Sink, users: list[str], *, count: int, rate: float, conns: int,
              seed: int, tag: str, reply_timeout: float = 60.0) -> dict[str, Any]:
    """Deliver on schedule, then collect the replies (the sink timestamps each one, so
    collecting afterwards changes no figure) and check that each delivery got exactly one."""
    work: queue.Queue[Delivery | None] = queue.Queue()
    began: dict[int, float] = {}
    lmtp_s: dict[int, float] = {}
    errors: list[str] = []
    sink.skip_to_end()
    connections = [_Connection(dv, work, began, lmtp_s, errors) for _ in range(conns)]
    for c in connections:
        c.start()
    deliveries = plan(users, count, rate, seed, tag, time.time() + LEAD_S)
    for d in deliveries:
        time.sleep(max(0.0, d.due - time.time()))
        work.put(d)
    for _ in connections:
        work.put(None)
    for c in connections:
        c.join()
    recs = sink.collect([d.sender for d in deliveries], timeout=reply_timeout, linger=2.0)
    by_sender = {d.sender: d for d in deliveries}
    replied: dict[int, float] = {}
    for rec in recs:
        d = by_sender[rec["rcpt"][0]]
        replied.setdefault(d.index, rec["ts"])  # a second reply shows in check_replies
    answered = [i for i in replied if i in began]
    starts = sorted(began.values())
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    return {
        "n": count, "rate": rate, "conns": conns, "seed": seed,
        "delivered": len(began), "errors": errors[:5],
        "deliveries_per_s": (len(starts) - 1) / span if span > 0 else None,
        **check_replies(recs, [d.sender for d in deliveries]),
        "latency_ms": distribution_ms([replied[i] - began[i] for i in answered]),
        "from_schedule_ms": distribution_ms([replied[i] - deliveries[i].due for i in answered]),
        "start_lag_ms": distribution_ms([began[i] - deliveries[i].due for i in began]),
        "lmtp_ms": distribution_ms(list(lmtp_s.values())),
    }

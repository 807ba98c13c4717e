"""A burst over many mailboxes into a cluster of hosts, optionally killing one host mid-burst.

Counts per sender: answered or dropped, and every extra reply either a resend of the same reply
(same Message-ID: the documented window between the relay's 250 and the commit that marks it
sent) or a second decision (another Message-ID: must never happen). With a kill, the mailboxes
the dead host held ("orphaned") are timed from the kill: to their first reply from the new
owner ("answered again", target lease + 5 s) and to the reply to a probe message sent to each
of them right after the kill.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from datetime import datetime
from typing import Any

from bench.cluster import LEASE_S, Cluster, deliver_all, held, usage
from bench.phases import make_msg, senders
from bench.testbed import SENDER_DOMAIN


def burst(cluster: Cluster, n: int, conns: int, tag: str, *, kill_at: float | None = None,
          victim: int = 1) -> dict[str, Any]:
    """`n` messages from `n` senders, sender i to mailbox i mod M, over `conns` LMTP connections.
    With `kill_at` (a share of n), host `victim` gets SIGKILL once that many replies came."""
    users, sink = cluster.users, cluster.sink
    who = senders(tag, n)
    box = {s.lower(): users[i % len(users)] for i, s in enumerate(who)}
    msgs = [(s, box[s.lower()], make_msg(s, box[s.lower()])) for s in who]
    starts: list[float] = []
    errors: list[str] = []
    feeder = threading.Thread(target=lambda: errors.extend(deliver_all(cluster.dv, msgs, conns, starts)))
    got: dict[str, list[dict[str, Any]]] = {}
    kill: dict[str, Any] = {}
    probe_box: dict[str, str] = {}
    before = (cluster.cpu(), cluster.throttle(), cluster.shared_cpu())
    t0 = time.time()
    feeder.start()
    last_new = time.monotonic()
    done_at: float | None = None
    answered = 0  # burst senders with a reply
    while True:
        new = [r for r in sink.read_new() if r["rcpt"] and (r["rcpt"][0] in box or r["rcpt"][0] in probe_box)]
        now = time.monotonic()
        for rec in new:
            rcpt = rec["rcpt"][0]
            answered += rcpt not in got and rcpt in box
            got.setdefault(rcpt, []).append(rec)
        if new:
            last_new = now
        if kill_at is not None and not kill and answered >= kill_at * n:
            kill = _kill(cluster, victim, tag, probe_box, conns)
        if done_at is None and not feeder.is_alive() and answered == len(box) and \
                (not kill or all(p in got for p in probe_box)):
            done_at = now
            after, t1 = (cluster.cpu(), cluster.throttle(), cluster.shared_cpu()), time.time()
        if done_at is not None and now - done_at >= 2.0:  # linger: a resend comes late
            break
        if not feeder.is_alive() and now - last_new > LEASE_S + 30:
            break
        if not new:
            time.sleep(0.005)
    feeder.join()
    if done_at is None:  # gave up waiting: the readings cover the wait
        after, t1 = (cluster.cpu(), cluster.throttle(), cluster.shared_cpu()), time.time()
    first = min(starts, default=t0)
    firsts = [recs[0]["ts"] for s, recs in got.items() if s in box]
    last = max(firsts, default=time.time())
    out: dict[str, Any] = {
        "n": n, "mailboxes": len(users), "hosts": len(cluster.daemons),
        "deliver_s": round(max(starts, default=first) - first, 2), "span_s": round(last - first, 2),
        "replies_per_s": round(len(firsts) / (last - first), 1) if last > first else 0.0,
        **_counts(got, box), **usage(before, after, t1 - t0), "errors": errors[:3]}
    if kill:
        out["failover"] = _failover(kill, got, box, probe_box)
        out["failover"]["claims_after_kill"] = claims(cluster, victim, kill["killed"])
    return out


def _kill(cluster: Cluster, victim: int, tag: str, probe_box: dict[str, str], conns: int) -> dict[str, Any]:
    """SIGKILL host `victim`, then one probe message to each mailbox it held (in the background,
    so replies keep being counted meanwhile)."""
    daemon = cluster.daemons[victim]
    orphaned = sorted(cluster.address(name) for name in held(daemon.log))
    cluster.cpu()  # its last CPU reading
    killed = time.time()
    daemon.proc.kill()
    daemon.proc.wait()
    probes = [f"k{tag}-{i}@{SENDER_DOMAIN}" for i in range(len(orphaned))]
    probe_box.update({p.lower(): u for p, u in zip(probes, orphaned, strict=True)})
    msgs = [(p, u, make_msg(p, u)) for p, u in zip(probes, orphaned, strict=True)]
    sent: dict[str, Any] = {}

    def send() -> None:
        sent["errors"] = deliver_all(cluster.dv, msgs, max(1, min(conns, len(msgs))))
        sent["done"] = time.time()

    thread = threading.Thread(target=send)
    thread.start()
    return {"killed": killed, "orphaned": orphaned, "thread": thread, "sent": sent}


def _counts(got: dict[str, list[dict[str, Any]]], box: dict[str, str]) -> dict[str, Any]:
    same = other = 0
    for sender in box:
        recs = got.get(sender, [])
        for rec in recs[1:]:
            if rec.get("mid") is not None and rec.get("mid") == recs[0].get("mid"):
                same += 1
            else:
                other += 1
    answered = sum(1 for s in box if s in got)
    return {"expected": len(box), "answered": answered, "dropped": len(box) - answered,
            "replies": sum(len(got.get(s, [])) for s in box), "dup_same_message_id": same,
            "dup_other_message_id": other,
            "exact": answered == len(box) and same == 0 and other == 0}


def _failover(kill: dict[str, Any], got: dict[str, list[dict[str, Any]]], box: dict[str, str],
              probe_box: dict[str, str]) -> dict[str, Any]:
    kill["thread"].join()
    killed: float = kill["killed"]
    orphaned = set(kill["orphaned"])
    first: dict[str, float] = {}  # orphaned mailbox -> first reply after the kill (any sender)
    for sender, recs in got.items():
        mailbox = box.get(sender) or probe_box.get(sender)
        if mailbox is not None and mailbox in orphaned:
            after = [r["ts"] for r in recs if r["ts"] > killed]
            if after:
                first[mailbox] = min(first.get(mailbox, after[0]), *after)
    again = sorted(t - killed for t in first.values())
    probe = sorted(got[p][0]["ts"] - killed for p in probe_box if p in got)
    limit = LEASE_S + 5
    return {"lease_s": LEASE_S, "orphaned": len(orphaned), "answered_again": len(first),
            "answered_again_max_s": round(max(again), 2) if again else None,
            "answered_again_p50_s": round(statistics.median(again), 2) if again else None,
            "probes": len(probe_box), "probes_answered": len(probe),
            "probe_reply_max_s": round(max(probe), 2) if probe else None,
            "probes_sent_s": round(kill["sent"].get("done", killed) - killed, 2),
            "probe_errors": kill["sent"].get("errors", [])[:3],
            "probe_dup": sum(len(got.get(p, [])) - 1 for p in probe_box if p in got),
            "within_lease_plus_5": bool(again) and len(first) == len(orphaned) and max(again) <= limit}


def claims(cluster: Cluster, victim: int, killed: float) -> list[dict[str, Any]]:
    """The survivors' lease.acquired events after the kill: when (seconds after it) and how many."""
    out: list[dict[str, Any]] = []
    for k, daemon in enumerate(cluster.daemons):
        if k == victim:
            continue
        for line in daemon.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"lease.acquired"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                if at > killed:
                    out.append({"host": k, "after_s": round(at - killed, 2),
                                "mailboxes": len(event["mailboxes"])})
    return sorted(out, key=lambda c: c["after_s"])

"""Many mailboxes in one awayd process, and catching up on a backlog after a stop."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from bench.daemon import Awayd, group_cpu_seconds, idle_cpu, memory, run_once, write_config
from bench.phases import JITTER_S, distribution_ms, make_msg, senders, warm_up
from bench.sink import Sink, check_replies
from bench.testbed import HOST, PASSWORD, Dovecot

BATCH = 500


def scale(dv: Dovecot, sink: Sink, work: Path, mailboxes: int, samples: int, cpu_window: float,
          gap: float, tag: str, seed: int) -> dict[str, Any]:
    """awayd with `mailboxes` IDLE folders: start-up, memory, idle CPU, then the delivery-to-
    reply time for `samples` messages, each to a random mailbox."""
    users = [dv.new_user(f"sc{i}") for i in range(mailboxes)]
    config = write_config(work / f"scale-{tag}.yaml", dv, sink.port, users)
    daemon = Awayd(config, work / f"scale-{tag}.log")
    try:
        connect_s = daemon.wait_connected(mailboxes, timeout=120 + mailboxes * 0.2)
        warm_up(dv, sink, users[0], tag)
        time.sleep(2.0)  # every folder back in IDLE after its first check
        mem = memory(daemon.pid)
        dovecot0, t0 = group_cpu_seconds(dv.master_pid or 0), time.perf_counter()
        cpu = idle_cpu(daemon.pid, cpu_window)
        dovecot_cpu = (group_cpu_seconds(dv.master_pid or 0) - dovecot0) / (time.perf_counter() - t0)
        rng = random.Random(seed)
        lat: list[float] = []
        missing = 0
        with dv.lmtp() as lmtp:
            for sender in senders(tag, samples):
                rcpt = rng.choice(users)
                raw = make_msg(sender, rcpt)
                start = time.time()
                lmtp.sendmail(sender, [rcpt], raw)
                recs = sink.collect([sender], timeout=15)
                if recs:
                    lat.append(recs[0]["ts"] - start)
                else:
                    missing += 1
                time.sleep(gap + rng.uniform(0, JITTER_S))
        after = memory(daemon.pid)
    finally:
        stop_s = daemon.stop()
    return {"mailboxes": mailboxes, "connect_s": connect_s, **mem, "rss_after_mib": after["rss_mib"],
            "idle_cpu": cpu, "dovecot_idle_cpu": dovecot_cpu, "samples": samples,
            "replies": len(lat), "missing": missing, "exact": missing == 0 and len(lat) == samples,
            "latency_ms": distribution_ms(lat), "stop_s": stop_s}


def _client(dv: Dovecot, user: str) -> Any:
    client = IMAPClient(HOST, port=dv.imap_port, ssl=False, timeout=60)
    client.login(user, PASSWORD)
    return client


def fill(dv: Dovecot, user: str, who: list[str]) -> float:
    """MULTIAPPEND one message from each sender (with LMTP's Return-Path and Delivered-To);
    returns messages/s."""
    client = _client(dv, user)
    try:
        start = time.perf_counter()
        for i in range(0, len(who), BATCH):
            client.multiappend("INBOX", [{"msg": make_msg(s, user, envelope=True), "flags": ()}
                                         for s in who[i:i + BATCH]])
        return len(who) / (time.perf_counter() - start)
    finally:
        client.logout()


def raw_fetch(dv: Dovecot, user: str) -> dict[str, Any]:
    """The imapclient floor: UID SEARCH, then BODY.PEEK[HEADER] in batches of BATCH."""
    client = _client(dv, user)
    try:
        client.select_folder("INBOX", readonly=True)
        start = time.perf_counter()
        uids = sorted(client.search(["ALL"]))
        got = 0
        for i in range(0, len(uids), BATCH):
            got += len(client.fetch(uids[i:i + BATCH], [b"BODY.PEEK[HEADER]"]))
        seconds = time.perf_counter() - start
    finally:
        client.logout()
    return {"messages": got, "seconds": seconds, "msgs_per_s": got / seconds}


def _decisions(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        count, first, last = conn.execute("SELECT count(*), min(at), max(at) FROM decisions").fetchone()
        reasons = dict(conn.execute("SELECT reason, count(*) FROM decisions GROUP BY reason"))
    finally:
        conn.close()
    return {"decided": count, "decide_span_s": (last - first) if count else 0.0, "reasons": reasons}


def catchup(dv: Dovecot, sink: Sink, work: Path, n: int, tag: str) -> dict[str, Any]:
    """Checkpoint by `awayd run --once` on the empty mailbox, `n` messages arrive while awayd
    is stopped, then `awayd run --once` decides (and answers) them all."""
    user = dv.new_user("cu")
    config = write_config(work / f"catchup-{tag}.yaml", dv, sink.port, [user])
    log = work / f"catchup-{tag}.log"
    empty_s, rc0 = run_once(config, log)
    who = senders(tag, n)
    fill_rate = fill(dv, user, who)
    once_s, rc = run_once(config, log)
    recs = sink.collect(who, timeout=60, linger=0.5)
    decided = _decisions(config.with_suffix(".db"))
    base = raw_fetch(dv, user)
    rate = n / once_s
    return {"n": n, "once_s": once_s, "msgs_per_s": rate, "exit_codes": [rc0, rc],
            "empty_once_s": empty_s, **decided,
            "pipeline_msgs_per_s": n / decided["decide_span_s"] if decided["decide_span_s"] else None,
            "fill_msgs_per_s": fill_rate, "raw_fetch": base, "ratio": rate / base["msgs_per_s"],
            **check_replies(recs, who),
            "all_decided": decided["decided"] == n and rc0 == 0 and rc == 0}

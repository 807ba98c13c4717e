"""bench/hosts: burst throughput with the state on PostgreSQL against SQLite, and three hosts against one.

    python -m bench.hosts [--burst N] [--mailboxes M] [--runs R] [--out DIR]

Same run, same private Dovecot, sink and PostgreSQL cluster (initdb in a temp dir, on
127.0.0.1, as the unprivileged mail user; fsync on, synchronous_commit on, so PostgreSQL
commits as durably as SQLite's WAL). The burst is `N` messages from `N` senders spread over
`M` mailboxes; replies/s = replies / (last reply at the sink - first delivery start). Every
run also checks exactly one reply per sender. Needs root, Dovecot and PostgreSQL's server.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.daemon import Awayd, cpu_seconds, write_config
from bench.phases import make_msg, senders, warm_up
from bench.sink import Sink, check_replies
from bench.testbed import Dovecot, raise_fd_limit, unavailable_reason

#: state.lease of the PostgreSQL setups: the failover target is this plus 5 s.
LEASE_S = 10.0


def say(text: str) -> None:
    print(f"[hosts {time.strftime('%H:%M:%S')}] {text}", flush=True)


def config_for(work: Path, dv: Dovecot, sink: Sink, users: list[str], tag: str, url: str | None) -> Path:
    path = write_config(work / f"hosts-{tag}.yaml", dv, sink.port, users)
    if url is not None:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["state"] = {"url": url, "lease": f"{LEASE_S:g}s"}
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def held(log: Path) -> set[str]:
    boxes: set[str] = set()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "lease.acquired":
                boxes |= set(event["mailboxes"])
            elif event.get("event") in ("lease.lost", "lease.released"):
                boxes -= set(event["mailboxes"])
    return boxes


def wait_split(daemons: list[Awayd], boxes: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        sets = [held(d.log) for d in daemons]
        if all(sets) and sum(map(len, sets)) == boxes and len(set().union(*sets)) == boxes:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"mailboxes not split between {len(daemons)} hosts: {sets}")
        time.sleep(0.2)


def burst(dv: Dovecot, sink: Sink, users: list[str], n: int, conns: int, tag: str,
          pids: list[int]) -> dict[str, Any]:
    who = senders(tag, n)
    msgs = [(s, users[i % len(users)], make_msg(s, users[i % len(users)])) for i, s in enumerate(who)]
    starts: list[float] = []
    errors: list[str] = []

    def deliver(chunk: list[tuple[str, str, bytes]]) -> None:
        try:
            with dv.lmtp() as lmtp:
                for sender, rcpt, raw in chunk:
                    starts.append(time.time())
                    if lmtp.sendmail(sender, [rcpt], raw):
                        errors.append(f"refused for {rcpt}")
        except (OSError, smtplib.SMTPException) as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=deliver, args=(msgs[i::conns],)) for i in range(conns)]
    cpu0 = sum(cpu_seconds(p) for p in pids)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delivered = time.time()
    recs = sink.collect(who, timeout=120 + n / 10, quiet=30, linger=1.0)
    cpu1 = sum(cpu_seconds(p) for p in pids)
    first = min(starts)
    last = max((r["ts"] for r in recs), default=delivered)
    return {"n": n, "mailboxes": len(users), "span_s": round(last - first, 3),
            "replies_per_s": round(len(recs) / (last - first), 1), "awayd_cpu_s": round(cpu1 - cpu0, 2),
            **check_replies(recs, who), "errors": errors[:3]}


def one_setup(dv: Dovecot, sink: Sink, work: Path, *, n: int, conns: int, mailboxes: int, hosts: int,
              url: str | None, tag: str) -> dict[str, Any]:
    users = [dv.new_user(f"h{tag}") for _ in range(mailboxes)]
    config = config_for(work, dv, sink, users, tag, url)
    daemons = [Awayd(config, work / f"hosts-{tag}-{k}.log") for k in range(1)]
    try:
        daemons[0].wait_connected(mailboxes, timeout=60)
        for k in range(1, hosts):
            daemons.append(Awayd(config, work / f"hosts-{tag}-{k}.log"))
        if url is not None:
            wait_split(daemons, mailboxes)
        for user in users:  # every mailbox connected (on its current host) and answering
            warm_up(dv, sink, user, f"{tag}{user[:8]}")
        return burst(dv, sink, users, n, conns, tag, [d.pid for d in daemons])
    finally:
        for d in daemons:
            d.stop()


def failover(dv: Dovecot, sink: Sink, work: Path, url: str, mailboxes: int) -> dict[str, Any]:
    """Three hosts; one is killed with SIGKILL and every mailbox gets a message at once: the
    seconds from the kill to each mailbox's reply (target: at most the lease + 5 s)."""
    users = [dv.new_user("hf") for _ in range(mailboxes)]
    config = config_for(work, dv, sink, users, "fo", url)
    daemons = [Awayd(config, work / "hosts-fo-0.log")]
    try:
        daemons[0].wait_connected(mailboxes, timeout=60)
        daemons += [Awayd(config, work / f"hosts-fo-{k}.log") for k in (1, 2)]
        wait_split(daemons, mailboxes)
        for user in users:
            warm_up(dv, sink, user, f"fo{user[:8]}")
        victim = daemons[1]
        orphaned = len(held(victim.log))
        killed = time.time()
        victim.proc.kill()
        who = [f"after-kill-{n}@example.net" for n in range(mailboxes)]
        with dv.lmtp() as lmtp:
            for sender, user in zip(who, users, strict=True):
                lmtp.sendmail(sender, [user], make_msg(sender, user))
        recs = sink.collect(who, timeout=LEASE_S + 60, quiet=LEASE_S + 30)
        waits = sorted(r["ts"] - killed for r in recs)
        return {"lease_s": LEASE_S, "mailboxes": mailboxes, "orphaned": orphaned,
                "answered": len(recs), "max_s": round(max(waits, default=float("nan")), 2),
                "within_lease_plus_5": len(recs) == mailboxes and max(waits) <= LEASE_S + 5}
    finally:
        for d in daemons:
            d.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--burst", type=int, default=2000)
    ap.add_argument("--mailboxes", type=int, default=6)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--failover", action=argparse.BooleanOptionalAction, default=True,
                    help="also kill one of three hosts and time every mailbox's next reply")
    args = ap.parse_args(argv)
    from tests.integration.postgres import Postgres  # noqa: PLC0415
    from tests.integration.postgres import unavailable_reason as pg_unavailable  # noqa: PLC0415

    reason = unavailable_reason() or pg_unavailable()
    if reason is not None:
        print(f"bench.hosts: cannot run: {reason}", file=sys.stderr)
        return 77
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="awayd-bench-hosts-"))
    results: dict[str, list[dict[str, Any]]] = {"sqlite_1": [], "pg_1": [], "pg_3": []}
    with contextlib.ExitStack() as stack:
        sink = Sink(work)
        stack.callback(sink.stop)
        dv = Dovecot(sink.port, max_conn=1100)
        stack.callback(dv.cleanup)
        dv.start()
        pg = Postgres.create(durable=True)
        stack.callback(pg.cleanup)
        pg.start()
        for r in range(args.runs):
            order = ["sqlite_1", "pg_1", "pg_3"] if r % 2 == 0 else ["pg_3", "pg_1", "sqlite_1"]
            for setup in order:
                url = None if setup == "sqlite_1" else pg.new_database()
                res = one_setup(dv, sink, work, n=args.burst, conns=args.conns,
                                mailboxes=args.mailboxes, hosts=3 if setup == "pg_3" else 1, url=url,
                                tag=f"{setup[:2]}{setup[-1]}r{r}")
                results[setup].append(res)
                say(f"run {r + 1} {setup}: {res['replies_per_s']} replies/s,"
                    f" {res['replies']}/{res['expected']} replies, exact {res['exact']},"
                    f" awayd CPU {res['awayd_cpu_s']} s")
        fo = failover(dv, sink, work, pg.new_database(), args.mailboxes) if args.failover else None
        if fo is not None:
            say(f"failover: {fo['answered']}/{fo['mailboxes']} mailboxes answered after a kill -9,"
                f" the last {fo['max_s']} s after it (lease {fo['lease_s']:g} s,"
                f" {fo['orphaned']} mailboxes orphaned)")
    best = {k: max(x["replies_per_s"] for x in v) for k, v in results.items()}
    summary = {"pg_1_vs_sqlite_1": round(best["pg_1"] / best["sqlite_1"], 2),
               "pg_3_vs_pg_1": round(best["pg_3"] / best["pg_1"], 2),
               "all_exact": all(x["exact"] for v in results.values() for x in v)}
    say(f"best replies/s {best}; ratios {summary}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"hosts-{stamp}.json"
    out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "runs": results,
                               "best_replies_per_s": best, "ratios": summary, "failover": fo},
                              indent=1), encoding="utf-8")
    print(f"results: {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["all_exact"] and (fo is None or fo["answered"] == fo["mailboxes"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())

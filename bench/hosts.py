"""bench/hosts: burst throughput with the state on PostgreSQL against SQLite, three hosts
against one, and three hosts losing one to SIGKILL mid-burst.

    python -m bench.hosts [--burst N] [--mailboxes M] [--runs R] [--host-cpu F] [--out DIR]
                          [--no-uncapped] [--no-failover] [--kill-at SHARE]

Same run, same private Dovecot, sink and PostgreSQL cluster (initdb in a temp dir, on
127.0.0.1, as the unprivileged mail user; fsync on). A host is one `awayd run` process in a
cgroup of its own capped at `F` of a core (`--host-cpu`, 0 = uncapped; see bench/cgroup.py):
on one machine, hosts would otherwise share the cores with Dovecot, PostgreSQL and the sink
and adding hosts would add no CPU. Setups, in alternating order per run: SQLite at one host,
PostgreSQL at one host and PostgreSQL at three hosts (capped), SQLite and PostgreSQL at one host
uncapped; then, every run, the failover burst: three capped hosts, host 1 killed with SIGKILL
once `--kill-at` of the replies came, a probe message to each mailbox it held (bench/hostburst.py
says what is checked). The burst is `N` messages from `N` senders over `M` mailboxes;
replies/s = senders answered / (their last first reply at the sink - first delivery start).
Every setup checks one reply per sender. Needs root, Dovecot and PostgreSQL's server.
`--setups= --mailboxes 6 --burst 60` is a quick failover check (about a minute).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cgroup import Slices
from bench.cluster import LEASE_S, Cluster
from bench.hostburst import burst
from bench.sink import Sink
from bench.testbed import Dovecot, InotifyLimit, raise_fd_limit, unavailable_reason

CAPPED = ("sqlite_1", "pg_1", "pg_3")
UNCAPPED = ("sqlite_1u", "pg_1u")
LOGGED = ("lease.acquired", "lease.released", "lease.lost", "lease.fenced", "store.write_failed")


def say(text: str) -> None:
    print(f"[hosts {time.strftime('%H:%M:%S')}] {text}", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.hosts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--burst", type=int, default=2000, help="messages per burst")
    ap.add_argument("--mailboxes", type=int, default=1000, help="mailboxes the burst is spread over")
    ap.add_argument("--conns", type=int, default=8, help="LMTP connections delivering the burst")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--host-cpu", type=float, default=0.25,
                    help="CPU quota of each host in cores (0 = uncapped)")
    ap.add_argument("--uncapped", action=argparse.BooleanOptionalAction, default=True,
                    help="also SQLite and PostgreSQL at one uncapped host")
    ap.add_argument("--failover", action=argparse.BooleanOptionalAction, default=True,
                    help="also a burst into three hosts, one killed with SIGKILL mid-burst")
    ap.add_argument("--setups",
                    help=f"comma-separated subset of {CAPPED + UNCAPPED} (default: all; empty: none)")
    ap.add_argument("--kill-at", type=float, default=1 / 3, help="share of replies before the kill")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                    help="where hosts-*.json goes (bench/out, like bench/run)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs)")
    args = ap.parse_args(argv)
    if args.host_cpu < 0 or not 0 < args.kill_at < 1 or min(args.burst, args.mailboxes, args.conns) < 1:
        ap.error("--host-cpu must be >= 0, --kill-at in (0, 1), counts >= 1")
    if args.setups is not None:
        args.setups = [x.strip() for x in args.setups.split(",") if x.strip()]
        if unknown := set(args.setups) - set(CAPPED + UNCAPPED):
            ap.error(f"unknown setup(s) {sorted(unknown)}")
    return args


def one_setup(dv: Dovecot, sink: Sink, work: Path, args: argparse.Namespace, setup: str, run: int,
              url: str | None, slices: Slices, *, kill: bool = False,
              postgres_pid: int | None = None) -> dict[str, Any]:
    hosts = 3 if setup.startswith("pg_3") or setup == "failover" else 1
    tag = f"{setup.replace('_', '')}r{run}"
    cluster = Cluster(dv, sink, work, mailboxes=args.mailboxes, url=url, tag=tag, slices=slices,
                      postgres_pid=postgres_pid)
    try:
        ready = cluster.start(hosts, warm_conns=args.conns)
        res = burst(cluster, args.burst, args.conns, tag, kill_at=args.kill_at if kill else None)
    finally:
        cluster.stop()
    # a host losing its own leases (late renewals) or fenced writes would show here
    events = {e: [d.count(e) for d in cluster.daemons] for e in LOGGED}
    return {**res, "start": ready, "capped": bool(cluster.cgroups and cluster.cgroups[0]),
            "events_per_host": events}


def describe(setup: str, res: dict[str, Any]) -> str:
    text = (f"{setup}: {res['replies_per_s']} replies/s, {res['answered']}/{res['expected']} answered,"
            f" duplicates {res['dup_same_message_id']} same / {res['dup_other_message_id']} other"
            f" Message-ID, awayd CPU {res['awayd_cpu_s_per_host']} s,"
            f" throttled {res['throttled_s_per_host']} s, cores used {res['shared_cores']},"
            f" start {res['start']}")
    if (fo := res.get("failover")) is not None:
        text += (f"; killed host held {fo['orphaned']}: {fo['answered_again']} answered again,"
                 f" the last {fo['answered_again_max_s']} s after the kill (p50"
                 f" {fo['answered_again_p50_s']} s), probes {fo['probes_answered']}/{fo['probes']},"
                 f" last probe reply {fo['probe_reply_max_s']} s")
    return text


def ratios(best: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, (a, b) in {"pg_1_vs_sqlite_1": ("pg_1", "sqlite_1"), "pg_3_vs_pg_1": ("pg_3", "pg_1"),
                         "pg_1u_vs_sqlite_1u": ("pg_1u", "sqlite_1u")}.items():
        if best.get(a) and best.get(b):
            out[name] = round(best[a] / best[b], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from tests.integration.postgres import Postgres  # noqa: PLC0415
    from tests.integration.postgres import unavailable_reason as pg_unavailable  # noqa: PLC0415

    reason = unavailable_reason() or pg_unavailable()
    if reason is not None:
        print(f"bench.hosts: cannot run: {reason}", file=sys.stderr)
        return 77
    # SIGTERM unwinds like an exception: the hosts stop, the cgroups go, the inotify limit is reset
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="awayd-bench-hosts-"))
    setups = list(CAPPED) + (list(UNCAPPED) if args.uncapped and args.host_cpu > 0 else [])
    if args.setups is not None:
        setups = [s for s in setups if s in args.setups]
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in setups}
    fo: list[dict[str, Any]] = []
    sessions = max(1100, args.mailboxes + 300)  # a moved mailbox's old session may linger
    with InotifyLimit(max(1024, 2 * sessions)), contextlib.ExitStack() as stack:
        if not args.keep:  # also after a failure or SIGTERM; the sink and Dovecot stop first
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        slices = Slices(args.host_cpu)
        stack.callback(slices.close)
        uncapped = Slices(0)
        say(f"hosts: {slices.note}")
        sink = Sink(work)
        stack.callback(sink.stop)
        dv = Dovecot(sink.port, max_conn=sessions)
        stack.callback(dv.cleanup)
        dv.start()
        pg = Postgres.create(durable=True)
        stack.callback(pg.cleanup)
        pg.start()
        pg_pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        for r in range(args.runs):
            for setup in setups if r % 2 == 0 else setups[::-1]:
                url = None if setup.startswith("sqlite") else pg.new_database()
                res = one_setup(dv, sink, work, args, setup, r, url,
                                uncapped if setup.endswith("u") else slices, postgres_pid=pg_pid)
                results[setup].append(res)
                say(f"run {r + 1} {describe(setup, res)}")
            if args.failover:
                fo.append(one_setup(dv, sink, work, args, "failover", r, pg.new_database(), slices,
                                    kill=True, postgres_pid=pg_pid))
                say(f"run {r + 1} {describe('failover', fo[-1])}")
    best = {k: max(x["replies_per_s"] for x in v) for k, v in results.items() if v}
    summary: dict[str, Any] = {**ratios(best),
                               "all_exact": all(x["exact"] for v in results.values() for x in v)}
    if fo:
        summary["failover_ok"] = all(f["dropped"] == 0 and f["dup_other_message_id"] == 0
                                     and f["failover"]["probes_answered"] == f["failover"]["probes"]
                                     for f in fo)
        summary["failover_answered_again_max_s"] = [f["failover"]["answered_again_max_s"] for f in fo]
        summary["failover_within_lease_plus_5"] = all(f["failover"]["within_lease_plus_5"] for f in fo)
    elapsed = round(time.perf_counter() - started)
    say(f"best replies/s {best}; {summary}; {elapsed} s")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"hosts-{stamp}.json"
    out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "lease_s": LEASE_S,
                               "cap": {"host_cpu": args.host_cpu, "cgroup": slices.version,
                                       "note": slices.note},
                               "runs": results, "best_replies_per_s": best, "summary": summary,
                               "failover": fo, "elapsed_s": elapsed}, indent=1), encoding="utf-8")
    print(f"results: {out}")
    if args.keep:
        print(f"work dir kept: {work}")
    return 0 if summary["all_exact"] and summary.get("failover_ok", True) else 1


if __name__ == "__main__":
    raise SystemExit(main())

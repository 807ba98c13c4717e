"""`bench/run`: one private Dovecot (IMAP, LMTP, Pigeonhole) and one SMTP sink on 127.0.0.1,
then burst, latency, scale, catch-up and engine figures for awayd next to a baseline
measured in the same run. Writes bench/out/results-*.json and prints a summary.

    bench/run [--smoke] [--runs N] [--only burst,latency,...] [--out DIR] [--keep]
    bench/run --only hosts [--runs N] [--burst N] [--mailboxes M] [--host-cpu F]

`hosts` (not run by default: it brings its own Dovecot, sink and PostgreSQL) is
`python -m bench.hosts`: PostgreSQL against SQLite, three CPU-capped hosts against one, and a
host killed mid-burst; it writes its own hosts-*.json.

Exit status 0 when every reply count was exact, 1 when one was not, 2 on a usage error,
77 when Dovecot with Pigeonhole (or root) is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import engine, phases, push, quality, scale
from bench.report import checks, figures, machine, summary, versions
from bench.sink import Sink
from bench.testbed import Dovecot, InotifyLimit, raise_fd_limit, unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("burst", "latency", "push", "pushscale", "scale", "catchup", "engine", "quality")
EXTRA = ("hosts",)  # only when asked for by --only


@dataclass(frozen=True)
class Settings:
    runs: int = 3
    burst: int = 2000
    conns: int = 4
    latency: int = 200
    gap_s: float = 0.05
    mailboxes: int = 1000
    scale_samples: int = 100
    idle_cpu_s: float = 30.0  # one IDLE wake period: every folder wakes once in the window
    one_mailbox_cpu_s: float = 5.0
    catchup: int = 10_000
    engine_s: float = 3.0
    push_mailboxes: int = 20_000
    push_deliveries: int = 500  # pushscale: open-loop deliveries to random mailboxes
    push_rate: float = 50.0  # pushscale: deliveries started per second
    push_conns: int = 8  # pushscale: LMTP connections the schedule is spread over


SMOKE = Settings(runs=1, burst=20, conns=4, latency=5, mailboxes=20, scale_samples=5,
                 idle_cpu_s=1.0, one_mailbox_cpu_s=0.5, catchup=200, engine_s=0.2,
                 push_mailboxes=20, push_deliveries=10)


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one run: checks the harness")
    ap.add_argument("--runs", type=int, help="runs per figure (default 3, smoke 1)")
    ap.add_argument("--only", default=",".join(PHASES),
                    help=f"comma-separated subset of {PHASES + EXTRA}")
    ap.add_argument("--host-cpu", type=float, help="hosts: CPU quota of each host in cores")
    ap.add_argument("--mailboxes", type=int, help="scale: mailboxes in one awayd")
    ap.add_argument("--push-mailboxes", type=int, help="pushscale: push-mode mailboxes in one awayd")
    ap.add_argument("--push-deliveries", type=int, help="pushscale: deliveries (500)")
    ap.add_argument("--push-rate", type=float, help="pushscale: deliveries per second (50)")
    ap.add_argument("--burst", type=int, help="burst: messages")
    ap.add_argument("--latency", type=int, help="latency: samples per contender")
    ap.add_argument("--catchup", type=int, help="catch-up: messages")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="where results go")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, configs, state)")
    args = ap.parse_args(argv)
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    if unknown := set(args.phases) - set(PHASES + EXTRA):
        ap.error(f"unknown phase(s) {sorted(unknown)}; choose from {PHASES + EXTRA}")
    return args


def settings_for(args: argparse.Namespace) -> Settings:
    base = SMOKE if args.smoke else Settings()
    changes = {k: v for k, v in {"runs": args.runs, "mailboxes": args.mailboxes,
                                 "push_mailboxes": args.push_mailboxes, "burst": args.burst,
                                 "push_deliveries": args.push_deliveries,
                                 "push_rate": args.push_rate,
                                 "latency": args.latency, "catchup": args.catchup}.items()
               if v is not None}
    return Settings(**{**asdict(base), **changes})


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {text}", file=sys.stderr, flush=True)


def run_phases(s: Settings, wanted: list[str], dv: Dovecot, sink: Sink, work: Path) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    if "burst" in wanted:
        raw["burst"] = []
        for r in range(s.runs):
            order = ["pigeonhole", "awayd"] if r % 2 == 0 else ["awayd", "pigeonhole"]
            run: dict[str, Any] = {}
            for who in order:
                if who == "pigeonhole":
                    run[who] = phases.burst_pigeonhole(dv, sink, s.burst, s.conns, f"b{r}p")
                else:
                    run[who] = phases.burst_awayd(dv, sink, work, s.burst, s.conns, f"b{r}a")
                say(f"burst run {r + 1} {who}: {run[who]['replies_per_s']:.1f} replies/s,"
                    f" {run[who]['replies']}/{s.burst} replies")
            raw["burst"].append(run)
    if "latency" in wanted:
        raw["latency"] = []
        for r in range(s.runs):
            run = {"pigeonhole": phases.latency_pigeonhole(dv, sink, s.latency, s.gap_s, f"l{r}p"),
                   "awayd_idle": phases.latency_awayd(dv, sink, work, s.latency, s.gap_s, f"l{r}i",
                                                      idle=True, cpu_window=s.one_mailbox_cpu_s),
                   "awayd_poll": phases.latency_awayd(dv, sink, work, s.latency, s.gap_s, f"l{r}f",
                                                      idle=False)}
            say(f"latency run {r + 1}: p50 ms " + ", ".join(
                f"{k} {v['latency_ms'].get('p50', float('nan')):.1f}" for k, v in run.items()))
            raw["latency"].append(run)
    if "push" in wanted:
        raw["push"] = []
        for r in range(s.runs):
            order = ["pigeonhole", "awayd_push"] if r % 2 == 0 else ["awayd_push", "pigeonhole"]
            run = {}
            for who in order:
                run[who] = (phases.latency_pigeonhole(dv, sink, s.latency, s.gap_s, f"q{r}p")
                            if who == "pigeonhole" else
                            push.latency_push(sink, work, s.latency, s.gap_s, f"q{r}a",
                                              cpu_window=s.one_mailbox_cpu_s))
            say(f"push run {r + 1}: p50/p95 ms " + ", ".join(
                f"{k} {v['latency_ms'].get('p50', float('nan')):.1f}/"
                f"{v['latency_ms'].get('p95', float('nan')):.1f}" for k, v in run.items()))
            raw["push"].append(run)
    if "pushscale" in wanted:
        raw["pushscale"] = []
        for r in range(s.runs):
            res = push.scale_push(sink, work, s.push_mailboxes, s.push_deliveries, s.idle_cpu_s,
                                  f"ps{r}", seed=r, rate=s.push_rate, conns=s.push_conns)
            say(f"push scale run {r + 1}: {res['rss_mib']:.0f} MiB, idle CPU "
                f"{100 * res['idle_cpu']:.2f} %, p50/p95/p99 " + "/".join(
                    f"{res['latency_ms'].get(p, float('nan')):.0f}" for p in ("p50", "p95", "p99"))
                + f" ms at {res['deliveries_per_s'] or 0:.1f} deliveries/s, listening after"
                f" {res['listening_s']:.1f} s, swept in {res['startup_sweep_s']:.0f} s,"
                f" {res['replies']}/{res['n']} replies")
            raw["pushscale"].append(res)
    if "scale" in wanted:
        raw["scale"] = []
        for r in range(s.runs):
            res = scale.scale(dv, sink, work, s.mailboxes, s.scale_samples, s.idle_cpu_s, s.gap_s,
                              f"s{r}", seed=r)
            say(f"scale run {r + 1}: {res['rss_mib']:.0f} MiB, idle CPU {100 * res['idle_cpu']:.1f} %,"
                f" p95 {res['latency_ms'].get('p95', float('nan')):.0f} ms, connected in"
                f" {res['connect_s']:.1f} s")
            raw["scale"].append(res)
    if "catchup" in wanted:
        raw["catchup"] = []
        for r in range(s.runs):
            res = scale.catchup(dv, sink, work, s.catchup, f"c{r}")
            say(f"catch-up run {r + 1}: {res['msgs_per_s']:.0f} msgs/s (raw fetch"
                f" {res['raw_fetch']['msgs_per_s']:.0f}/s), {res['decided']}/{s.catchup} decided")
            raw["catchup"].append(res)
    if "engine" in wanted:
        raw["engine"] = engine.measure(ROOT / "tests" / "data", s.engine_s, max(s.runs, 1))
        say(f"engine: {raw['engine']['decisions_per_s']:.0f} decisions/s")
    if "quality" in wanted:
        raw["quality"] = quality.measure()
        say("quality: " + ", ".join(f"{k} {100 * v['rate']:.1f} % of {v['total']}"
                                    for k, v in raw["quality"]["sets"].items()))
    return raw


def run_hosts(args: argparse.Namespace) -> int:
    """The `hosts` phase: bench.hosts with the options given here."""
    from bench import hosts  # noqa: PLC0415 - loads PostgreSQL's test bed only when asked for

    argv = ["--out", str(args.out)]
    sizes = {"--runs": args.runs, "--burst": args.burst, "--mailboxes": args.mailboxes,
             "--host-cpu": args.host_cpu}
    if args.smoke:
        sizes = {"--burst": 12, "--mailboxes": 3, "--runs": 1, **{k: v for k, v in sizes.items() if v}}
        argv += ["--conns", "2", "--no-failover"]
    for option, value in sizes.items():
        if value is not None:
            argv += [option, str(value)]
    say(f"hosts: python -m bench.hosts {' '.join(argv)}")
    return hosts.main(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if "hosts" in args.phases:
        args.phases.remove("hosts")
        status = main_phases(args) if args.phases else 0
        return max(status, run_hosts(args))
    return main_phases(args)


def main_phases(args: argparse.Namespace) -> int:
    if (reason := unavailable_reason()) is not None:
        print(f"bench/run: cannot run: {reason}", file=sys.stderr)
        return 77
    s = settings_for(args)
    # SIGTERM unwinds like an exception, so Dovecot, the sink and the inotify limit are restored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    nofile = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="awayd-bench-"))
    load_before = os.getloadavg()  # other work on the machine shows here: compare in one run
    say(f"{'smoke' if args.smoke else 'full'} benchmark, work dir {work}")
    wanted_sessions = s.mailboxes + 100
    with InotifyLimit(max(1024, 2 * wanted_sessions)) as inotify, contextlib.ExitStack() as stack:
        sink = Sink(work)
        stack.callback(sink.stop)
        dv = Dovecot(sink.port, max_conn=max(1100, wanted_sessions))
        stack.callback(dv.cleanup)
        dv.start()
        raw = run_phases(s, args.phases, dv, sink, work)
        dovecot_version = dv.version()
        environment = {"fd_limit": nofile, "inotify_max_user_instances": {
            "before": inotify.before, "during": inotify.now}, "dovecot_max_conn": dv.max_conn,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    result: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full", "phases": args.phases,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": asdict(s), "machine": machine(), "versions": versions(dovecot_version),
        "environment": environment, "figures": figures(raw), "checks": checks(raw), "raw": raw}
    result["all_exact"] = all(c["ok"] for c in result["checks"])
    result["elapsed_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"results-{result['mode']}-{stamp}.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / f"latest-{result['mode']}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    text = summary(result)
    (args.out / f"summary-{result['mode']}-{stamp}.txt").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"\nresults: {path}")
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result["all_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Push mode: Dovecot's Lua push_notification driver (contrib/dovecot) wakes awayd per delivery."""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from bench.daemon import RULE, Awayd, cpu_seconds, idle_cpu, memory
from bench.openloop import open_loop
from bench.phases import latency, make_msg, warm_up
from bench.sink import Sink
from bench.testbed import HOST, MASTER_USER, SENDER_DOMAIN, Dovecot, free_port


def write_push_config(path: Path, dv: Dovecot, smtp_port: int, users: list[str], *, listen: str,
                      token_file: Path, sweep: str = "5m") -> Path:
    """Every user's INBOX in push mode, logged in through the master user, one rule."""
    config = {
        "state": {"path": str(path.with_suffix(".db"))},
        "smtp": {"host": HOST, "port": smtp_port, "security": "none"},
        "push": {"listen": listen, "token_file": str(token_file), "sweep_interval": sweep},
        "defaults": {
            "max_replies": {"per_hour": 1_000_000, "per_day": 1_000_000},
            "imap": {"host": HOST, "port": dv.imap_port, "security": "none",
                     "master_user": MASTER_USER,
                     "master_password_file": str(dv.master_password_file), "push": True},
            "rules": [RULE],
        },
        "mailboxes": [{"name": f"m{i}", "address": u} for i, u in enumerate(users)],
    }
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")  # JSON is YAML
    return path


def push_dovecot(sink: Sink, token_file: Path, *, max_conn: int) -> tuple[Dovecot, int, Path]:
    """A started Dovecot whose Lua driver posts to a free port on 127.0.0.1 with a new token
    (written to `token_file` for awayd's config); returns it, the port and the token file."""
    port = free_port()
    token = secrets.token_hex(16)
    token_file.write_text(token + "\n", encoding="utf-8")
    dv = Dovecot(sink.port, max_conn=max_conn, push=(f"http://{HOST}:{port}/events", token))
    dv.start()
    return dv, port, token_file


def latency_push(sink: Sink, work: Path, n: int, gap: float, tag: str, *,
                 cpu_window: float = 0.0) -> dict[str, Any]:
    """Delivery to reply through a push event, on a Dovecot of its own that runs the shipped
    Lua driver (the Pigeonhole instance stays without it, so its baseline is unchanged)."""
    dv, port, token_file = push_dovecot(sink, work / f"push-{tag}.token", max_conn=200)
    daemon: Awayd | None = None
    try:
        user = dv.new_user("push")
        config = write_push_config(work / f"push-{tag}.yaml", dv, sink.port, [user],
                                   listen=f"{HOST}:{port}", token_file=token_file, sweep="1h")
        daemon = Awayd(config, work / f"push-{tag}.log")
        daemon.wait_connected(1, timeout=30)
        warm_up(dv, sink, user, tag)
        extra: dict[str, Any] = {}
        if cpu_window > 0:
            extra = {"idle_cpu": idle_cpu(daemon.pid, cpu_window), **memory(daemon.pid)}
        result = latency(dv, sink, user, n, gap, tag)
        result["swept"] = daemon.count("push.swept")  # 1: the start; every reply came by event
        return {**result, **extra}
    finally:
        if daemon is not None:
            daemon.stop()
        dv.cleanup()


def scale_push(sink: Sink, work: Path, n: int, deliveries: int, idle_s: float, tag: str, *,
               seed: int = 0, rate: float = 50.0, conns: int = 8,
               during_sweep: bool = True) -> dict[str, Any]:
    """`n` push-mode mailboxes in one awayd (listed by a mailbox_command): time until the
    endpoint listens and until the start-up sweep has examined every folder, RSS, idle CPU
    between sweeps, then `deliveries` deliveries to random mailboxes on an open-loop schedule
    of `rate` a second over `conns` LMTP connections (bench/openloop.py); with `during_sweep`,
    the same number once more while the start-up sweep runs (which it then slows down)."""
    dv, port, token_file = push_dovecot(sink, work / f"pscale-{tag}.token", max_conn=300)
    daemon: Awayd | None = None
    try:
        users = [dv.new_user(f"ps{i}") for i in range(n)]
        listing = work / f"pscale-{tag}.users"
        listing.write_text("\n".join(users) + "\n", encoding="utf-8")
        config = write_push_config(work / f"pscale-{tag}.yaml", dv, sink.port, [],
                                   listen=f"{HOST}:{port}", token_file=token_file, sweep="1h")
        data = json.loads(config.read_text(encoding="utf-8"))
        del data["mailboxes"]
        data["mailbox_command"] = ["cat", str(listing)]
        config.write_text(json.dumps(data, indent=1), encoding="utf-8")
        start = time.perf_counter()
        daemon = Awayd(config, work / f"pscale-{tag}.log")
        listening = _wait(daemon, "push.listening", 1, 120) - start
        sweeping: dict[str, Any] = {}
        if during_sweep:
            # the same schedule while the start-up sweep examines every folder: the events
            # compete with it for the fetch threads and Dovecot's logins
            sweeping = open_loop(dv, sink, users, count=deliveries, rate=rate, conns=conns,
                                 seed=seed + 1, tag=f"{tag}w")
            sweeping["overlapped"] = daemon.count("push.swept") == 0
        swept = _wait(daemon, "push.swept", 1, 1800) - start
        time.sleep(1.0)
        mem, cpu = memory(daemon.pid), idle_cpu(daemon.pid, idle_s)
        load = os.getloadavg()
        cpu0 = cpu_seconds(daemon.pid)
        res = open_loop(dv, sink, users, count=deliveries, rate=rate, conns=conns, seed=seed,
                        tag=tag)
        cpu_s = cpu_seconds(daemon.pid) - cpu0
        return {"mailboxes": n, "listening_s": listening, "startup_sweep_s": swept,
                "idle_cpu": cpu, **mem, "loadavg_before": load, "awayd_cpu_s": cpu_s, **res,
                "during_sweep": sweeping or None,
                "reload": reload_one_more(dv, sink, daemon, listing, users, tag)}
    finally:
        if daemon is not None:
            daemon.stop()
        dv.cleanup()


def reload_one_more(dv: Dovecot, sink: Sink, daemon: Awayd, listing: Path, users: list[str],
                    tag: str) -> dict[str, Any]:
    """SIGHUP after one more user joined the mailbox_command's list: how long the reload
    takes, how many folders it sweeps at once and how many logins Dovecot sees meanwhile (the
    new mailbox's only), then one delivery to the new mailbox, which must be answered."""
    added = dv.new_user("psnew")
    listing.write_text("\n".join([*users, added]) + "\n", encoding="utf-8")
    logins = _logins(dv)
    start = time.perf_counter()
    daemon.proc.send_signal(signal.SIGHUP)
    reloaded = _wait(daemon, "config.reloaded", 1, 600) - start
    swept = _wait(daemon, "push.swept", 2, 600) - start
    logins = _logins(dv) - logins
    event = _last(daemon, "push.reloaded")
    sender = f"new{tag}@{SENDER_DOMAIN}"
    with dv.lmtp() as lmtp:
        lmtp.sendmail(sender, [added], make_msg(sender, added))
    answered = len(sink.collect([sender], timeout=30, linger=1.0))
    return {"reload_s": reloaded, "changed_swept_s": swept, "folders": event.get("folders"),
            "swept_now": event.get("sweep_now"), "logins": logins, "new_mailbox_replies": answered}


def _logins(dv: Dovecot) -> int:
    log = dv.dir / "log" / "dovecot.log"
    return log.read_text(encoding="utf-8", errors="replace").count("Login: user=<")


def _last(daemon: Awayd, event: str) -> dict[str, Any]:
    marker = f'"event": "{event}"'
    lines = [line for line in daemon.log.read_text(encoding="utf-8").splitlines() if marker in line]
    found: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return found


def _wait(daemon: Awayd, event: str, count: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while daemon.count(event) < count:
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"awayd exited with {daemon.proc.returncode}; see {daemon.log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {event} within {timeout:g} s; see {daemon.log}")
        time.sleep(0.1)
    return time.perf_counter()

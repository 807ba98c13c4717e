"""Push mode: Dovecot's Lua push_notification driver (contrib/dovecot) wakes awayd per delivery."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from bench.daemon import RULE, Awayd, idle_cpu, memory
from bench.phases import latency, warm_up
from bench.sink import Sink
from bench.testbed import HOST, MASTER_USER, Dovecot, free_port


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


def latency_push(sink: Sink, work: Path, n: int, gap: float, tag: str, *,
                 cpu_window: float = 0.0) -> dict[str, Any]:
    """Delivery to reply through a push event, on a Dovecot of its own that runs the shipped
    Lua driver (the Pigeonhole instance stays without it, so its baseline is unchanged)."""
    port = free_port()
    token = secrets.token_hex(16)
    token_file = work / f"push-{tag}.token"
    token_file.write_text(token + "\n", encoding="utf-8")
    dv = Dovecot(sink.port, max_conn=200, push=(f"http://{HOST}:{port}/events", token))
    dv.start()
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

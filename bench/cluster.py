"""Several `awayd run` hosts on one state: each in its own CPU slice, the mailboxes split by
lease, every mailbox warmed up (connected on its final host and answering) before a burst."""

from __future__ import annotations

import contextlib
import json
import os
import smtplib
import threading
import time
from pathlib import Path
from typing import Any

from bench.cgroup import CpuSlice, CpuStat, Slices
from bench.daemon import Awayd, cpu_seconds, group_cpu_seconds, write_config
from bench.phases import make_msg
from bench.sink import Sink
from bench.testbed import SENDER_DOMAIN, Dovecot

#: state.lease of the PostgreSQL setups: the failover target is this plus 5 s.
LEASE_S = 10.0


def config_for(work: Path, dv: Dovecot, sink: Sink, users: list[str], tag: str, url: str | None) -> Path:
    path = write_config(work / f"hosts-{tag}.yaml", dv, sink.port, users)
    if url is not None:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["state"] = {"url": url, "lease": f"{LEASE_S:g}s"}
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def held(log: Path) -> set[str]:
    """The mailbox names (m0, m1, ...) a host holds according to its log."""
    boxes: set[str] = set()
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if event.get("event") == "lease.acquired":
                boxes |= set(event["mailboxes"])
            elif event.get("event") in ("lease.lost", "lease.released"):
                boxes -= set(event["mailboxes"])
    return boxes


def deliver_all(dv: Dovecot, msgs: list[tuple[str, str, bytes]], conns: int,
                starts: list[float] | None = None) -> list[str]:
    """Deliver (sender, rcpt, raw) over `conns` LMTP connections at once; returns errors."""
    errors: list[str] = []

    def deliver(chunk: list[tuple[str, str, bytes]]) -> None:
        try:
            with dv.lmtp() as lmtp:
                for sender, rcpt, raw in chunk:
                    if starts is not None:
                        starts.append(time.time())
                    if lmtp.sendmail(sender, [rcpt], raw):
                        errors.append(f"refused for {rcpt}")
        except (OSError, smtplib.SMTPException) as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=deliver, args=(msgs[i::conns],)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


class Cluster:
    """`hosts` awayd processes on one config; host k runs in slice k when slices are given."""

    def __init__(self, dv: Dovecot, sink: Sink, work: Path, *, mailboxes: int, url: str | None,
                 tag: str, slices: Slices, postgres_pid: int | None = None) -> None:
        self.dv, self.sink, self.work, self.tag, self.url = dv, sink, work, tag, url
        self.postgres_pid = postgres_pid
        self.slices = slices
        self.users = [dv.new_user(f"h{tag}") for _ in range(mailboxes)]
        self.config = config_for(work, dv, sink, self.users, tag, url)
        self.daemons: list[Awayd] = []
        self.cgroups: list[CpuSlice | None] = []
        self._cpu: dict[int, float] = {}

    def address(self, name: str) -> str:
        """The address of mailbox `m<i>` of the config."""
        return self.users[int(name[1:])]

    def _spawn(self) -> Awayd:
        k = len(self.daemons)
        group = self.slices.make(f"{self.tag}-{k}")
        self.cgroups.append(group)
        daemon = Awayd(self.config, self.work / f"hosts-{self.tag}-{k}.log",
                       preexec=None if group is None else group.preexec)
        self.daemons.append(daemon)
        return daemon

    def start(self, hosts: int, warm_conns: int = 8) -> dict[str, float]:
        """Host 0 first, until every folder has its checkpoint (so a message delivered while a
        mailbox moves to another host is still new to it), then the others, the split, and
        one answered message per mailbox. Returns the seconds each step took."""
        t0 = time.perf_counter()
        n = len(self.users)
        self._spawn().wait_connected(n, timeout=120 + n)
        t1 = time.perf_counter()
        for _ in range(1, hosts):
            self._spawn()
        if self.url is not None:
            self.wait_split()
        t2 = time.perf_counter()
        self.warm_up(warm_conns)
        return {"first_host_s": round(t1 - t0, 1), "split_s": round(t2 - t1, 1),
                "warm_up_s": round(time.perf_counter() - t2, 1)}

    def wait_split(self, timeout: float = 300) -> None:
        """Until every host holds its fair share and together they hold every mailbox once."""
        n, k = len(self.users), len(self.daemons)
        share = -(-n // k)
        deadline = time.monotonic() + timeout
        while True:
            sets = [held(d.log) for d in self.daemons]
            if (all(sets) and max(map(len, sets)) <= share and sum(map(len, sets)) == n
                    and len(set().union(*sets)) == n):
                return
            for d in self.daemons:
                if d.proc.poll() is not None:
                    raise RuntimeError(f"awayd exited with {d.proc.returncode}; see {d.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mailboxes not split between {k} hosts: {list(map(len, sets))}")
            time.sleep(0.2)

    def warm_up(self, conns: int) -> None:
        """One message to every mailbox at once and every reply: each mailbox is connected on
        the host that holds it, its script compiled, its SMTP path open."""
        who = [f"w{self.tag}-{i}@{SENDER_DOMAIN}" for i in range(len(self.users))]
        msgs = [(s, u, make_msg(s, u)) for s, u in zip(who, self.users, strict=True)]
        errors = deliver_all(self.dv, msgs, conns)
        got = {rec["rcpt"][0] for rec in self.sink.collect(who, timeout=120 + len(who) / 5, quiet=60)}
        if errors or len(got) < len(who):
            raise RuntimeError(f"warm-up: {len(got)}/{len(who)} mailboxes answered; {errors[:3]}")

    def cpu(self) -> dict[int, float]:
        """CPU seconds per host so far (a killed host keeps its last reading)."""
        for d in self.daemons:
            with contextlib.suppress(OSError, IndexError):
                self._cpu[d.pid] = cpu_seconds(d.pid)
        return dict(self._cpu)

    def shared_cpu(self) -> dict[str, float]:
        """CPU seconds so far of what every host shares, and of the whole machine (busy)."""
        out = {"dovecot": group_cpu_seconds(self.dv.master_pid or 0),
               "sink": cpu_seconds(self.sink.proc.pid), "machine_busy": machine_busy_seconds()}
        if self.postgres_pid is not None:
            out["postgres"] = group_cpu_seconds(self.postgres_pid)
        return out

    def throttle(self) -> list[CpuStat]:
        return [CpuStat() if g is None else g.stat() for g in self.cgroups]

    def stop(self) -> None:
        for d in self.daemons:
            d.stop()


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent running something (user, nice, system, irq, softirq; not
    idle, IO wait or stolen by the hypervisor) since boot: every process, other jobs too."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


Reading = tuple[dict[int, float], list[CpuStat], dict[str, float]]


def usage(before: Reading, after: Reading, wall: float) -> dict[str, Any]:
    """CPU seconds and throttling per host between two readings (cluster.cpu(), throttle(),
    shared_cpu()), and the cores the shared servers and the whole machine used meanwhile."""
    cpu = [round(after[0][p] - before[0].get(p, 0.0), 2) for p in after[0]]
    thr = [a - b for a, b in zip(after[1], before[1], strict=True)]
    cores = {k: round((after[2][k] - before[2][k]) / wall, 2) for k in after[2]} if wall > 0 else {}
    return {"shared_cores": cores, "machine_cores": os.cpu_count(),
            "awayd_cpu_s": round(sum(cpu), 2), "awayd_cpu_s_per_host": cpu,
            "awayd_cores_per_host": [round(c / wall, 3) for c in cpu] if wall > 0 else [],
            "throttled_s_per_host": [round(t.throttled_s, 2) for t in thr],
            "throttled_periods_share": [round(t.throttled / t.periods, 2) if t.periods else 0.0
                                        for t in thr]}

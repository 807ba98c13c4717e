"""awayd as the benchmarks run it: a config for N mailboxes, `awayd run` as a subprocess, and
what /proc says about that process (RSS, CPU seconds, threads)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.testbed import HOST, Dovecot, die_with_parent

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")
#: How awayd is started (a profiling or experiment script may point this at a wrapper).
LAUNCH = ["-m", "awayd"]
RULE = {"name": "away", "interval": "1d", "subject": "Auto: {{ subject }}",
        "text": "I am away until Monday. (awayd)"}


def write_config(path: Path, dovecot: Dovecot, smtp_port: int, users: list[str], *,
                 idle: bool = True, poll_interval: str = "60s") -> Path:
    """One mailbox per user (INBOX only), one always-active rule, replies to the sink."""
    mailboxes = [{
        "name": f"m{i}", "address": user,
        "max_replies": {"per_hour": 1_000_000, "per_day": 1_000_000},
        "imap": {"host": HOST, "port": dovecot.imap_port, "security": "none", "username": user,
                 "password_file": str(dovecot.password_file), "folders": ["INBOX"],
                 "idle": idle, "poll_interval": poll_interval},
        "rules": [RULE],
    } for i, user in enumerate(users)]
    config = {"state": {"path": str(path.with_suffix(".db"))},
              "smtp": {"host": HOST, "port": smtp_port, "security": "none"},
              "mailboxes": mailboxes}
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")  # JSON is YAML
    return path


def _command(config: Path, *extra: str) -> list[str]:
    return [sys.executable, *LAUNCH, "run", "--config", str(config), *extra]


def run_once(config: Path, log: Path, timeout: float = 900) -> tuple[float, int]:
    """`awayd run --once`: (wall seconds, exit code)."""
    with log.open("ab") as out:
        start = time.perf_counter()
        proc = subprocess.run(_command(config, "--once"), stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout, check=False)
        return time.perf_counter() - start, proc.returncode


class Awayd:
    """`awayd run` in the background; its JSON log goes to `log`."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None,
                 preexec: Callable[[], None] | None = None) -> None:
        self.config = config
        self.log = log
        self._out = log.open("ab")
        self.started = time.perf_counter()

        def before_exec() -> None:
            die_with_parent()
            if preexec is not None:  # e.g. joining a CPU-capped cgroup
                preexec()

        self.proc = subprocess.Popen(
            _command(config), stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT,
            cwd=ROOT, preexec_fn=before_exec, env={**os.environ, **(env or {})})  # noqa: PLW1509

    @property
    def pid(self) -> int:
        return self.proc.pid

    def count(self, event: str) -> int:
        return self.log.read_bytes().count(f'"event": "{event}"'.encode())

    def wait_connected(self, folders: int, timeout: float) -> float:
        """Wait until every folder made its first checkpoint (it is connected and EXAMINEd);
        returns the seconds since start."""
        deadline = time.monotonic() + timeout
        while self.count("checkpoint.created") < folders:
            if self.proc.poll() is not None:
                raise RuntimeError(f"awayd exited with {self.proc.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"awayd connected {self.count('checkpoint.created')}/{folders}"
                                   f" folders in {timeout:g} s; see {self.log}")
            time.sleep(0.1)
        return time.perf_counter() - self.started

    def stop(self, timeout: float = 30) -> float:
        """SIGTERM and wait; returns how long the shutdown took."""
        start = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return time.perf_counter() - start


# -- /proc -----------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and Threads of `pid`."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def idle_cpu(pid: int, seconds: float) -> float:
    """Share of one core used by `pid` over `seconds` of wall time."""
    before, start = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.perf_counter() - start)


def group_cpu_seconds(master: int) -> float:
    """CPU seconds of a process tree: the master (with its reaped children) and its live children."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        if pid == master:
            total += sum(int(f) for f in fields[11:15]) / _TICK
        elif int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def memory(pid: int) -> dict[str, Any]:
    st = status(pid)
    return {"rss_mib": st.get("VmRSS", 0) / 1024, "hwm_mib": st.get("VmHWM", 0) / 1024,
            "threads": st.get("Threads", 0)}

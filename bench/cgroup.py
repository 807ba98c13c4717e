"""CPU-capped cgroups that model a host as a fixed slice of CPU (cgroup v1 cpu or v2 cpu.max).

On one machine every "host" of a multi-host benchmark shares the cores with Dovecot,
PostgreSQL and the sink, so adding hosts adds no CPU and host scaling cannot show. A cgroup
with a CFS quota gives each host process a fixed share (0.25 = a quarter of one core), like a
small machine of its own, while the shared servers keep the rest. cgroup v1's cpu controller
(`cpu.cfs_quota_us`) is tried first, then a cgroup v2 hierarchy with the cpu controller
(`cpu.max`); when neither is writable the hosts run uncapped and `note` says why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000
V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))


@dataclass(frozen=True)
class CpuStat:
    """Throttling so far: periods with the quota used up and the time spent waiting."""

    periods: int = 0
    throttled: int = 0
    throttled_s: float = 0.0

    def __sub__(self, other: CpuStat) -> CpuStat:
        return CpuStat(self.periods - other.periods, self.throttled - other.throttled,
                       self.throttled_s - other.throttled_s)


class CpuSlice:
    """One cgroup with a quota of `fraction` of a core; `preexec` puts the child in it."""

    def __init__(self, path: Path, version: int, fraction: float) -> None:
        self.path = path
        self.version = version
        self.fraction = fraction

    def preexec(self) -> None:
        """Runs in the child between fork and exec: the process (and every thread it starts
        later) belongs to the slice from its first instruction."""
        fd = os.open(self.path / "cgroup.procs", os.O_WRONLY)
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def stat(self) -> CpuStat:
        fields: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for line in (self.path / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                with contextlib.suppress(ValueError):
                    fields[key] = int(value)
        if self.version == 1:
            return CpuStat(fields.get("nr_periods", 0), fields.get("nr_throttled", 0),
                           fields.get("throttled_time", 0) / 1e9)
        return CpuStat(fields.get("nr_periods", 0), fields.get("nr_throttled", 0),
                       fields.get("throttled_usec", 0) / 1e6)

    def remove(self, timeout: float = 10.0) -> None:
        """rmdir once the processes in it are gone (a killed child may take a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as err:
                if err.errno != errno.EBUSY or time.monotonic() > deadline:
                    print(f"bench: could not remove cgroup {self.path}: {err}", flush=True)
                    return
                time.sleep(0.1)


class Slices:
    """Makes one CpuSlice per host and removes them all at `close()`.

    `fraction` 0 means uncapped: `make` returns None, as it does when no cgroup can be made
    (then `note` tells why, and `version` is None)."""

    def __init__(self, fraction: float, prefix: str = "awayd-bench") -> None:
        self.fraction = fraction
        self.prefix = f"{prefix}-{os.getpid()}"
        self.made: list[CpuSlice] = []
        self.version: int | None = None
        self.note = "uncapped (--host-cpu 0)"
        self._make: Callable[[str], CpuSlice] | None = None
        if fraction > 0:
            self._probe()

    def _probe(self) -> None:
        reasons: list[str] = []
        for version, attempt in ((1, self._v1), (2, self._v2)):
            try:
                probe = attempt(f"{self.prefix}-probe")
            except OSError as err:
                reasons.append(f"cgroup v{version}: {err}")
                continue
            probe.remove()
            self.version = version
            self._make = attempt
            self.note = (f"each host capped at {self.fraction:g} of a core"
                         f" (cgroup v{version} {probe.path.parent})")
            return
        self.note = ("UNCAPPED: no writable cgroup with the cpu controller (" + "; ".join(reasons)
                     + "): every host shares the machine's cores, so host scaling cannot show")

    def _quota(self) -> int:
        return max(1000, round(self.fraction * PERIOD_US))

    def _v1(self, name: str) -> CpuSlice:
        if not (V1_ROOT / "cpu.cfs_quota_us").exists():
            raise FileNotFoundError(errno.ENOENT, "no cpu controller mounted", str(V1_ROOT))
        path = V1_ROOT / name
        path.mkdir()
        try:
            (path / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
            (path / "cpu.cfs_quota_us").write_text(f"{self._quota()}\n")
        except OSError:
            path.rmdir()
            raise
        return CpuSlice(path, 1, self.fraction)

    def _v2(self, name: str) -> CpuSlice:
        last: OSError = FileNotFoundError(errno.ENOENT, "no cgroup v2 hierarchy", str(V2_ROOTS[0]))
        for root in V2_ROOTS:
            controllers = root / "cgroup.controllers"
            try:
                if "cpu" not in controllers.read_text().split():
                    raise PermissionError(errno.EPERM, "the cpu controller is not available", str(root))
                if "cpu" not in (root / "cgroup.subtree_control").read_text().split():
                    (root / "cgroup.subtree_control").write_text("+cpu\n")
                path = root / name
                path.mkdir()
                try:
                    (path / "cpu.max").write_text(f"{self._quota()} {PERIOD_US}\n")
                except OSError:
                    path.rmdir()
                    raise
                return CpuSlice(path, 2, self.fraction)
            except OSError as err:
                last = err
        raise last

    def make(self, name: str) -> CpuSlice | None:
        if self._make is None:
            return None
        made = self._make(f"{self.prefix}-{name}")
        self.made.append(made)
        return made

    def close(self) -> None:
        for made in self.made:
            made.remove()
        self.made.clear()

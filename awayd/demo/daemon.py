"""The real daemon (`awayd run`) as a subprocess, its JSON log lines turned into events."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awayd.demo.servers import child_env, stop_process

STOP_TIMEOUT_S = 15.0  # the daemon finishes in-flight sends before it exits


@dataclass(frozen=True)
class LogEvent:
    """One JSON log line of the daemon."""

    event: str
    level: str
    fields: dict[str, Any]

    def get(self, key: str) -> str:
        value = self.fields.get(key)
        return "" if value is None else str(value)


@dataclass(frozen=True)
class DaemonExited:
    code: int | None


class Daemon:
    """`python -m awayd run --config PATH`; each log line goes to `on_event` from a reader thread."""

    def __init__(self, config_path: Path, on_event: Callable[[LogEvent | DaemonExited], None]) -> None:
        self.config_path = config_path
        self.on_event = on_event
        self.proc: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None
        self.other_lines: deque[str] = deque(maxlen=40)  # tracebacks and non-JSON output

    def start(self) -> None:
        # -P: never the current directory first, or a folder named awayd there would be run instead
        argv = [sys.executable, "-P", "-m", "awayd", "run", "--config", str(self.config_path)]
        # its own session: a Ctrl-C in the terminal reaches the demo, which stops it in order
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, encoding="utf-8",
                                     errors="replace", env=child_env(), start_new_session=True)
        self.reader = threading.Thread(target=self._read, name="demo-daemon-log", daemon=True)
        self.reader.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def _read(self) -> None:
        proc = self.proc
        assert proc is not None
        assert proc.stdout is not None
        for line in proc.stdout:
            event = parse_line(line)
            if event is None:
                if line.strip():
                    self.other_lines.append(line.rstrip("\n"))
                continue
            self.on_event(event)
        self.on_event(DaemonExited(proc.wait()))

    def output_tail(self) -> str:
        return "\n".join(self.other_lines) or "(no other output)"

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = stop_process(self.proc, STOP_TIMEOUT_S)
        if self.reader is not None:
            self.reader.join(timeout=2.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        return code


def parse_line(line: str) -> LogEvent | None:
    """A structlog JSON line, or None for anything else."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        return None
    return LogEvent(event=data["event"], level=str(data.get("level", "info")), fields=data)

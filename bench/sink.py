"""An aiosmtpd sink in its own process (so it never competes for the harness's GIL) that writes
one JSON line per accepted message, and a reader that follows that file.

    python -m bench.sink --port PORT --jsonl FILE      (127.0.0.1 only; SIGTERM stops it)

Each line: {"ts": time.time() at the end of DATA, "from": MAIL FROM ("" for <>),
"rcpt": [RCPT TO...], "irt": In-Reply-To header, "mid": the message's own Message-ID}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.testbed import HOST, die_with_parent, free_port, listening

_IRT = re.compile(rb"^In-Reply-To:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
_MID = re.compile(rb"^Message-ID:[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)


class _Handler:
    def __init__(self, path: str) -> None:
        self.out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the loop

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook
        ts = time.time()
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        head = raw.split(b"\r\n\r\n", 1)[0]
        found = _IRT.search(head)
        mid = _MID.search(head)
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        self.out.write(json.dumps({
            "ts": ts, "from": mail_from, "rcpt": [r.lower() for r in envelope.rcpt_tos],
            "irt": found.group(1).strip().decode("ascii", "replace") if found else None,
            "mid": mid.group(1).strip().decode("ascii", "replace") if mid else None}) + "\n")
        return "250 OK queued in sink"


def serve(port: int, path: str) -> None:
    from aiosmtpd.smtp import SMTP  # noqa: PLC0415 - only the sink process needs it

    handler = _Handler(path)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="sink.localhost", enable_SMTPUTF8=True),
        host=HOST, port=port, reuse_address=True, backlog=512))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    server.close()
    loop.run_until_complete(server.wait_closed())
    handler.out.close()


class Sink:
    """The sink process and a cursor over what it recorded."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.path = directory / "sink.jsonl"
        self.path.touch()
        self._offset = 0
        self._log = (directory / "sink.out").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.sink", "--port", str(self.port), "--jsonl", str(self.path)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent, cwd=Path(__file__).resolve().parent.parent)  # noqa: PLW1509
        deadline = time.monotonic() + 20
        while not listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the SMTP sink did not start; see sink.out")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def read_new(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]

    def skip_to_end(self) -> None:
        self._offset = self.path.stat().st_size

    def collect(self, rcpts: Iterable[str], timeout: float, quiet: float | None = None,
                linger: float = 0.0, poll: float = 0.005) -> list[dict[str, Any]]:
        """Records whose recipient is one of `rcpts`, until each has one (then `linger` seconds
        more, to catch duplicates), `timeout` passed, or nothing new came for `quiet` seconds.
        Records for other recipients are dropped."""
        wanted = {r.lower() for r in rcpts}
        left = set(wanted)
        got: list[dict[str, Any]] = []
        start = last = time.monotonic()
        done_at: float | None = None
        while True:
            now = time.monotonic()
            if now - start > timeout or (quiet is not None and now - last > quiet):
                break
            if done_at is not None and now - done_at >= linger:
                break
            new = [rec for rec in self.read_new() if rec["rcpt"] and rec["rcpt"][0] in wanted]
            if new:
                last = now
                got += new
                left.difference_update(rec["rcpt"][0] for rec in new)
                if not left and done_at is None:
                    done_at = now
            else:
                time.sleep(poll)
        return got


def check_replies(records: list[dict[str, Any]], senders: list[str]) -> dict[str, Any]:
    """Exactly one reply per sender, each to that sender and nobody else."""
    rcpts = [rec["rcpt"][0] for rec in records if len(rec["rcpt"]) == 1]
    wanted = {s.lower() for s in senders}
    ok = len(records) == len(senders) and len(rcpts) == len(records) and set(rcpts) == wanted
    return {"replies": len(records), "distinct_recipients": len(set(rcpts)), "expected": len(senders),
            "exact": ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--jsonl", required=True)
    args = ap.parse_args()
    serve(args.port, args.jsonl)


if __name__ == "__main__":
    main()

"""Decisions per second of the pure core over the test corpus, on one core.

Usage: python bench/engine.py [--seconds 3] [--corpus tests/data] [--json]
Reports the median of 3 runs with its range, and the ratio to a baseline measured in the
same run: parsing the same messages with the standard library's email parser.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from awayd.config.load import load_config
from awayd.core.decide import decide
from awayd.core.history import EmptyHistory

AT = datetime.fromisoformat("2026-12-22T10:00:00+01:00")


def _rate(fn: object, messages: list[bytes], seconds: float) -> float:
    assert callable(fn)
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for raw in messages:
            fn(raw)
        done += len(messages)
    return done / (time.perf_counter() - start)


def measure(corpus: Path, seconds: float = 3.0, runs: int = 3) -> dict[str, Any]:
    """Decisions/s of decide() over every .eml in `corpus` (with its config.yaml), and the
    stdlib email parser over the same messages, `runs` times each for `seconds`."""
    mailbox = load_config(corpus / "config.yaml").mailboxes[0]
    messages = [p.read_bytes() for p in sorted(corpus.glob("*.eml"))]
    history = EmptyHistory()
    counter = iter(range(10**12))

    def one(raw: bytes) -> None:
        decide(raw, mailbox, now=AT, history=history,
               new_message_id=lambda d: f"<awayd.{next(counter)}@{d}>")

    def baseline(raw: bytes) -> None:
        email.message_from_bytes(raw, policy=email.policy.compat32)

    one(messages[0])  # load the language model before timing
    ours = [_rate(one, messages, seconds) for _ in range(runs)]
    base = [_rate(baseline, messages, seconds) for _ in range(runs)]
    return {
        "messages": len(messages),
        "decisions_per_s": statistics.median(ours),
        "range": [min(ours), max(ours)],
        "runs": ours,
        "baseline_stdlib_parse_per_s": statistics.median(base),
        "baseline_range": [min(base), max(base)],
        "ratio_to_baseline": statistics.median(ours) / statistics.median(base),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--corpus", default=str(Path(__file__).parent.parent / "tests" / "data"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    result = measure(Path(args.corpus), args.seconds, args.runs)
    ours = result["runs"]
    if args.json:
        print(json.dumps(result))
    else:
        print(f"engine: {result['decisions_per_s']:,.0f} decisions/s "
              f"(range {min(ours):,.0f}-{max(ours):,.0f}) over {result['messages']} corpus messages; "
              f"stdlib email parse of the same: {result['baseline_stdlib_parse_per_s']:,.0f}/s; "
              f"ratio {result['ratio_to_baseline']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

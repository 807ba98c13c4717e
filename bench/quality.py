"""Decision quality on public real mail: machine skip rates and the human reply rate.

Usage: python -m bench.quality [--corpus tests/data/real] [--json] [--keep DIR]

Every message under `machine/` and `human/` is re-addressed to the corpus mailbox at load
time (the files stay as published): a fresh Delivered-To, Received and To, and a Return-Path
that is not null. Machine mail is judged twice, once with Return-Path = its From and once
with a neutral relay address (a forwarder that rewrote the envelope); human mail once, with
Return-Path = its From. All of it goes through one `awayd explain --json` process, the same
code path as the daemon. `exceptions.yaml` lists human messages expected to be skipped, each
with the reason and why.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, getaddresses
from pathlib import Path
from typing import Any

import yaml

from awayd.core import reasons

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "real"
AT = "2026-12-22T10:00:00+01:00"
MAILBOX = "reader@corpus.example.com"
RELAY = "relay@forwarder.example.net"
#: Skips that say "this is not a person to answer". Anything later (not-addressed, too-old,
#: rules, history) would be an artefact of the re-addressing, so it does not count as caught.
MACHINE_REASONS = frozenset(reasons.ALL[: reasons.ALL.index(reasons.UNAUTHENTICATED) + 1])
#: Human mail may be skipped only for a list or bulk marker, and only when listed.
EXEMPT_REASONS = frozenset({reasons.LIST, reasons.PRECEDENCE, reasons.BULK})

_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")


@dataclass(frozen=True)
class Case:
    name: str  # file name handed to explain: variant--set--source--file.eml
    kind: str  # machine | human
    variant: str  # from | relay
    source: str
    path: str  # relative to the corpus directory


def _split(raw: bytes) -> tuple[list[bytes], bytes, bytes]:
    """Header lines (each field with its folded continuation), the line ending, the body."""
    if raw.startswith(b"From "):  # mbox separator
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
    at = raw.find(eol + eol)
    head, body = (raw.rstrip(b"\r\n"), b"") if at < 0 else (raw[:at], raw[at + 2 * len(eol):])
    fields: list[bytes] = []
    for line in head.split(eol):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += eol + line
        else:
            fields.append(line)
    return fields, eol, body


def from_address(raw: bytes) -> str | None:
    fields, _, _ = _split(raw)
    for f in fields:
        m = _FIELD.match(f)
        if m and m.group(1).lower() == b"from":
            value = f[m.end():].decode("latin-1").replace("\r", "").replace("\n", "")
            found = [a for _, a in getaddresses([value]) if "@" in a]
            return found[0] if found else None
    return None


def readdress(raw: bytes, return_path: str, received: str) -> bytes:
    """The message as delivered to the corpus mailbox with a non-null Return-Path."""
    fields, eol, body = _split(raw)
    kept = [f for f in fields
            if not ((m := _FIELD.match(f)) and m.group(1).lower() in (b"return-path", b"to"))]
    top = [f"Return-Path: <{return_path}>", f"Delivered-To: {MAILBOX}",
           f"Received: from relay.example.net by mx.example.org; {received}"]
    new = [t.encode() for t in top] + kept + [f"To: {MAILBOX}".encode()]
    return eol.join(new) + eol + eol + body


def cases(corpus: Path) -> list[Case]:
    out: list[Case] = []
    for kind in ("machine", "human"):
        for path in sorted(p for p in (corpus / kind).rglob("*") if p.is_file()):
            source = path.parent.name
            variants = ("from", "relay") if kind == "machine" else ("from",)
            for variant in variants:
                rel = str(path.relative_to(corpus))
                name = f"{variant}--{kind}--{source}--{path.name}.eml"
                out.append(Case(name, kind, variant, source, rel))
    return out


def write_cases(corpus: Path, out_dir: Path) -> list[Case]:
    received = format_datetime(datetime.fromisoformat(AT))
    all_cases = cases(corpus)
    for case in all_cases:
        raw = (corpus / case.path).read_bytes()
        sender = from_address(raw) if case.variant == "from" else None
        (out_dir / case.name).write_bytes(readdress(raw, sender or RELAY, received))
    return all_cases


def explain(corpus: Path, directory: Path) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "awayd", "explain", "--config", str(corpus / "config.yaml"),
         "--at", AT, "--json", str(directory)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"awayd explain failed ({proc.returncode}): {proc.stderr}")
    return {Path(o["file"]).name: o for o in map(json.loads, proc.stdout.splitlines())}


def measure(corpus: Path = CORPUS, keep: Path | None = None) -> dict[str, Any]:
    """Run the corpus through `awayd explain` and summarise per set, source and reason."""
    exceptions = {e["file"]: e for e in yaml.safe_load((corpus / "exceptions.yaml").read_text()) or []}
    with tempfile.TemporaryDirectory() as tmp:
        directory = keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        all_cases = write_cases(corpus, directory)
        results = explain(corpus, directory)
    sets: dict[str, Counter[str]] = defaultdict(Counter)
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    missed: list[dict[str, str]] = []
    exempted: list[dict[str, str]] = []
    for case in all_cases:
        got = results[case.name]
        label = f"machine/{case.variant}" if case.kind == "machine" else "human"
        if case.kind == "machine":
            ok = got["decision"] == "skip" and got["reason"] in MACHINE_REASONS
        else:
            ok = got["decision"] == "reply"
            expected = exceptions.get(case.path)
            if expected is not None and got["decision"] == "skip" and (
                    got["reason"] == expected["reason"] in EXEMPT_REASONS):
                exempted.append({"file": case.path, "reason": got["reason"], "why": expected["why"]})
                sets["human-exempt"]["total"] += 1
                continue
        sets[label]["total"] += 1
        sets[label]["ok"] += ok
        sets[label][got["reason"]] += 1
        by_source[f"{label}:{case.source}"]["total"] += 1
        by_source[f"{label}:{case.source}"]["ok"] += ok
        if not ok:
            missed.append({"set": label, "file": case.path, "decision": got["decision"],
                           "reason": got["reason"], "detail": got["detail"]})
    stale = sorted(set(exceptions) - {e["file"] for e in exempted})
    summary = {k: {"total": v["total"], "ok": v["ok"], "rate": v["ok"] / v["total"] if v["total"] else 0.0,
                   "reasons": {r: n for r, n in v.items() if r not in ("total", "ok")}}
               for k, v in sorted(sets.items())}
    return {"sets": summary,
            "sources": {k: {"total": v["total"], "ok": v["ok"]} for k, v in sorted(by_source.items())},
            "missed": missed, "exempted": exempted, "stale_exceptions": stale}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", help="write the re-addressed messages here and keep them")
    args = ap.parse_args()
    result = measure(Path(args.corpus), Path(args.keep) if args.keep else None)
    if args.json:
        print(json.dumps(result))
        return 0
    names = {"machine/from": "machine mail, Return-Path = From (skipped)",
             "machine/relay": "machine mail, neutral Return-Path (skipped)",
             "human": "human mail (answered)"}
    for key, label in names.items():
        s = result["sets"].get(key, {"total": 0, "ok": 0, "rate": 0.0})
        print(f"{label}: {s['ok']}/{s['total']} = {100 * s['rate']:.1f}%")
    print(f"human mail exempted (list or bulk marker): {len(result['exempted'])}")
    for e in result["exempted"]:
        print(f"  exempt {e['file']}: {e['reason']} ({e['why']})")
    for m in result["missed"]:
        print(f"  MISSED [{m['set']}] {m['file']}: {m['decision']} {m['reason']}: {m['detail']}")
    for f in result["stale_exceptions"]:
        print(f"  STALE exception (answered or skipped otherwise): {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

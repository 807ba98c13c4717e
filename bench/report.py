"""Turn raw per-run measurements into figures (median, range, ratio to the same run's
baseline, target met or not), the machine and version facts, and the human summary."""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import statistics
from importlib import metadata
from pathlib import Path
from typing import Any

SIEVE_LIB = Path("/usr/lib/dovecot/libdovecot-sieve.so.0")


def spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "values": []}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}


def figure(name: str, unit: str, values: list[float], *, baseline: str | None = None,
           base_values: list[float] | None = None, target: str | None = None,
           met: bool | None = None, note: str = "") -> dict[str, Any]:
    """One figure; the ratio is taken run by run (value / baseline of the same run)."""
    fig: dict[str, Any] = {"name": name, "unit": unit, **spread(values), "note": note}
    if baseline is not None and base_values is not None:
        ratios = [v / b for v, b in zip(values, base_values, strict=True) if b]
        fig["baseline"] = {"name": baseline, **spread(base_values)}
        fig["ratio"] = spread(ratios)
    if target is not None:
        fig["target"], fig["met"] = target, met
    return fig


def _pick(runs: list[dict[str, Any]], *path: str) -> list[float]:
    out = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        out.append(value)
    return out


def _median(values: list[float]) -> float:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else float("nan")


def figures(raw: dict[str, Any], ms_idle_target: float = 550.0) -> list[dict[str, Any]]:
    figs: list[dict[str, Any]] = []
    if runs := raw.get("burst"):
        p, a = _pick(runs, "pigeonhole", "replies_per_s"), _pick(runs, "awayd", "replies_per_s")
        figs.append(figure("burst: Pigeonhole vacation replies/s", "1/s", p))
        figs.append(figure("burst: awayd replies/s", "1/s", a, baseline="Pigeonhole replies/s",
                           base_values=p, target="ratio >= 1.5",
                           met=_median(a) >= 1.5 * _median(p)))
        figs.append(figure("burst: LMTP deliveries/s into the awayd mailbox (no Sieve)", "1/s",
                           _pick(runs, "awayd", "deliveries_per_s"), baseline="into the Sieve mailbox",
                           base_values=_pick(runs, "pigeonhole", "deliveries_per_s"),
                           note="an upper bound for awayd's replies/s in this set-up"))
    if runs := raw.get("latency"):
        p50 = _pick(runs, "pigeonhole", "latency_ms", "p50")
        p95 = _pick(runs, "pigeonhole", "latency_ms", "p95")
        probe = _pick(runs, "awayd_idle", "idle_notify_ms", "p50")
        idle50 = _pick(runs, "awayd_idle", "latency_ms", "p50")
        poll50 = _pick(runs, "awayd_poll", "latency_ms", "p50")
        figs.append(figure("latency: Pigeonhole p50", "ms", p50))
        figs.append(figure("latency: Pigeonhole p95", "ms", p95))
        figs.append(figure("latency: Dovecot IDLE notify (plain imapclient) p50", "ms", probe,
                           note="delivery start to EXISTS on an IDLEing session: the floor for IDLE"))
        figs.append(figure("latency: awayd IDLE p50", "ms", idle50, baseline="Dovecot IDLE notify p50",
                           base_values=probe, target=f"<= {ms_idle_target:g} ms (500 ms notify + 50)",
                           met=_median(idle50) <= ms_idle_target,
                           note=f"median excess over the notify: "
                                f"{_median([a - b for a, b in zip(idle50, probe, strict=True)]):.1f} ms"))
        figs.append(figure("latency: awayd IDLE p95", "ms", _pick(runs, "awayd_idle", "latency_ms", "p95"),
                           baseline="Dovecot IDLE notify p95",
                           base_values=_pick(runs, "awayd_idle", "idle_notify_ms", "p95")))
        after = _median(_pick(runs, "awayd_poll", "after_lmtp_ms", "p50"))
        figs.append(figure("latency: awayd fast poll (0.1 s) p50", "ms", poll50,
                           baseline="Pigeonhole p50", base_values=p50, target="<= 60 ms",
                           met=_median(poll50) <= 60,
                           note=f"from the end of the LMTP transaction instead: {after:.1f} ms"))
        figs.append(figure("latency: awayd fast poll (0.1 s) p95", "ms",
                           _pick(runs, "awayd_poll", "latency_ms", "p95"),
                           baseline="Pigeonhole p95", base_values=p95))
    if runs := raw.get("push"):
        p50 = _pick(runs, "pigeonhole", "latency_ms", "p50")
        p95 = _pick(runs, "pigeonhole", "latency_ms", "p95")
        a50 = _pick(runs, "awayd_push", "latency_ms", "p50")
        a95 = _pick(runs, "awayd_push", "latency_ms", "p95")
        figs.append(figure("push: Pigeonhole p50 (same run)", "ms", p50))
        figs.append(figure("push: awayd push p50", "ms", a50, baseline="Pigeonhole p50",
                           base_values=p50, target="<= 25 ms", met=_median(a50) <= 25,
                           note="delivery start to reply at the sink; the event is sent inside "
                                "the delivery, so the LMTP time is included"))
        figs.append(figure("push: awayd push p95", "ms", a95, baseline="Pigeonhole p95",
                           base_values=p95, target="<= 60 ms", met=_median(a95) <= 60))
        figs.append(figure("push: LMTP delivery with the Lua driver p50", "ms",
                           _pick(runs, "awayd_push", "lmtp_ms", "p50"),
                           baseline="with Sieve vacation", base_values=_pick(
                               runs, "pigeonhole", "lmtp_ms", "p50")))
        figs.append(figure("push: awayd idle CPU, 1 push mailbox", "% of one core",
                           [c * 100 for c in _pick(runs, "awayd_push", "idle_cpu")]))
    if runs := raw.get("pushscale"):
        n = runs[0]["mailboxes"]
        rss = _pick(runs, "rss_mib")
        cpu = [c * 100 for c in _pick(runs, "idle_cpu")]
        p95 = _pick(runs, "latency_ms", "p95")
        ready = _pick(runs, "listening_s")
        figs.append(figure(f"push scale: awayd RSS, {n} mailboxes", "MiB", rss,
                           target="<= 300 MiB", met=_median(rss) <= 300))
        figs.append(figure(f"push scale: idle CPU between sweeps, {n} mailboxes", "% of one core",
                           cpu, target="<= 2 %", met=_median(cpu) <= 2))
        figs.append(figure(f"push scale: start until the endpoint listens, {n} mailboxes", "s",
                           ready, target="<= 30 s", met=_median(ready) <= 30))
        figs.append(figure(f"push scale: start-up sweep of {n} folders", "s",
                           _pick(runs, "startup_sweep_s"),
                           note="one master-user login per folder; every later sweep costs the same"))
        figs.append(figure(f"push scale: delivery-to-reply p50, random of {n} mailboxes", "ms",
                           _pick(runs, "latency_ms", "p50")))
        rate = runs[0].get("rate")
        figs.append(figure(f"push scale: delivery-to-reply p95, random of {n} mailboxes, open loop"
                           f" at {rate}/s", "ms", p95, target="<= 100 ms", met=_median(p95) <= 100))
        figs.append(figure(f"push scale: delivery-to-reply p99, random of {n} mailboxes", "ms",
                           _pick(runs, "latency_ms", "p99")))
        if any(r.get("during_sweep") for r in runs):
            p95w = _pick(runs, "during_sweep", "latency_ms", "p95")
            overlapped = sum(1 for r in runs if (r.get("during_sweep") or {}).get("overlapped"))
            figs.append(figure(f"push scale: delivery-to-reply p95 during the start-up sweep of {n}"
                               " folders", "ms", p95w, target="<= 100 ms",
                               met=_median(p95w) <= 100,
                               note=f"the sweep still ran after the last delivery in {overlapped}"
                                    f" of {len(runs)} runs"))
        if all(r.get("reload") for r in runs):
            figs.append(figure(f"push scale: reload (SIGHUP) of {n} mailboxes plus one new, until"
                               " config.reloaded", "s", _pick(runs, "reload", "reload_s"),
                               note="folders swept at once: " + ", ".join(
                                   str(r["reload"]["swept_now"]) for r in runs) + "; Dovecot logins"
                               " meanwhile: " + ", ".join(str(r["reload"]["logins"]) for r in runs)))
        figs.append(figure("push scale: deliveries started per second (achieved)", "1/s",
                           _pick(runs, "deliveries_per_s"),
                           target=f">= 95 % of {rate}/s",
                           met=rate is not None and _median(_pick(runs, "deliveries_per_s"))
                           >= 0.95 * rate))
    if runs := raw.get("scale"):
        lat = raw.get("latency") or []
        one_rss = _pick(lat, "awayd_idle", "rss_mib") if lat else None
        one_cpu = [c * 100 if c is not None else None for c in _pick(lat, "awayd_idle", "idle_cpu")]
        one_p95 = _pick(lat, "awayd_idle", "latency_ms", "p95") if lat else None
        same = len(lat) == len(runs)
        rss = _pick(runs, "rss_mib")
        cpu = [c * 100 for c in _pick(runs, "idle_cpu")]
        p95 = _pick(runs, "latency_ms", "p95")
        n = runs[0]["mailboxes"]
        figs.append(figure(f"scale: awayd RSS, {n} mailboxes", "MiB", rss, baseline="1 mailbox",
                           base_values=one_rss if same else None, target="<= 250 MiB",
                           met=_median(rss) <= 250))
        figs.append(figure(f"scale: awayd idle CPU, {n} mailboxes", "% of one core", cpu,
                           baseline="1 mailbox", base_values=one_cpu if same else None,
                           target="<= 5 %", met=_median(cpu) <= 5))
        figs.append(figure(f"scale: delivery-to-reply p95, {n} mailboxes", "ms", p95,
                           baseline="1 mailbox IDLE p95", base_values=one_p95 if same else None,
                           target="<= 1000 ms", met=_median(p95) <= 1000))
        figs.append(figure(f"scale: delivery-to-reply p50, {n} mailboxes", "ms",
                           _pick(runs, "latency_ms", "p50")))
        figs.append(figure(f"scale: start until all {n} folders connected", "s", _pick(runs, "connect_s")))
        figs.append(figure(f"scale: Dovecot CPU for {n} idle sessions", "% of one core",
                           [c * 100 for c in _pick(runs, "dovecot_idle_cpu")]))
    if runs := raw.get("catchup"):
        rate = _pick(runs, "msgs_per_s")
        figs.append(figure(f"catch-up: awayd run --once, {runs[0]['n']} messages", "msgs/s", rate,
                           baseline="imapclient BODY.PEEK[HEADER] fetch",
                           base_values=_pick(runs, "raw_fetch", "msgs_per_s")))
        figs.append(figure("catch-up: awayd decide+send (first to last decision)", "msgs/s",
                           _pick(runs, "pipeline_msgs_per_s")))
        figs.append(figure("catch-up: awayd run --once on an empty mailbox", "s",
                           _pick(runs, "empty_once_s"), note="start-up and connection overhead"))
    if eng := raw.get("engine"):
        figs.append(figure(f"engine: decisions/s over {eng['messages']} corpus messages", "1/s",
                           eng["runs"], baseline="stdlib email parse",
                           base_values=[eng["baseline_stdlib_parse_per_s"]] * len(eng["runs"])))
    if q := raw.get("quality"):
        for key, target in (("machine/from", 99.5), ("machine/relay", 98.0), ("human", 100.0)):
            res = q["sets"][key]
            what = "answered" if key == "human" else "skipped"
            figs.append(figure(f"quality: {key} mail {what} ({res['total']} public messages)", "%",
                               [100 * res["rate"]], target=f">= {target} %",
                               met=100 * res["rate"] >= target))
    return figs


def checks(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Exact reply counts: the figures mean nothing without them."""
    out = []
    for i, run in enumerate(raw.get("burst", [])):
        for who in ("pigeonhole", "awayd"):
            out.append({"what": f"burst run {i + 1} {who}: {run[who]['replies']}/{run[who]['expected']}"
                        " replies, one per sender", "ok": run[who]["exact"]})
    for i, res in enumerate(raw.get("pushscale", [])):
        out.append({"what": f"push scale run {i + 1}: {res['replies']}/{res['n']} replies, one"
                    " per delivery", "ok": res["exact"]})
        if reload := res.get("reload"):
            out.append({"what": f"push scale run {i + 1} reload: {reload['swept_now']} folder(s) swept"
                        f" at once (the added one), its delivery answered"
                        f" {reload['new_mailbox_replies']} time(s)",
                        "ok": reload["swept_now"] == 1 and reload["new_mailbox_replies"] == 1})
        if during := res.get("during_sweep"):
            out.append({"what": f"push scale run {i + 1} during the sweep: {during['replies']}/"
                        f"{during['n']} replies, one per delivery", "ok": during["exact"]})
    for i, run in enumerate(raw.get("push", [])):
        for who, res in run.items():
            out.append({"what": f"push run {i + 1} {who}: {res['replies']}/{res['n']} replies",
                        "ok": res["exact"]})
        out.append({"what": f"push run {i + 1}: only the start-up sweep ran (every reply came "
                    "from an event)", "ok": run["awayd_push"].get("swept") == 1})
    for i, run in enumerate(raw.get("latency", [])):
        for who, res in run.items():
            out.append({"what": f"latency run {i + 1} {who}: {res['replies']}/{res['n']} replies",
                        "ok": res["exact"]})
    for i, run in enumerate(raw.get("scale", [])):
        out.append({"what": f"scale run {i + 1}: {run['replies']}/{run['samples']} replies",
                    "ok": run["exact"]})
    for i, run in enumerate(raw.get("catchup", [])):
        out.append({"what": f"catch-up run {i + 1}: {run['decided']}/{run['n']} decided,"
                            f" {run['replies']} replies, one per sender",
                    "ok": run["all_decided"] and run["exact"]})
    return out


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
    debian = Path("/etc/debian_version")
    return {"nproc": os.cpu_count(), "cpu_model": model.group(1) if model else "?",
            "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
            "kernel": platform.release(),
            "os": f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform()}


def versions(dovecot: str) -> dict[str, str]:
    def pkg(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    pigeonhole = "?"
    if SIEVE_LIB.exists():
        found = re.search(rb"Pigeonhole Sieve (\d+\.\d+\.\d+)", SIEVE_LIB.read_bytes())
        pigeonhole = found.group(1).decode() if found else "?"
    return {"python": platform.python_version(), "dovecot": dovecot, "pigeonhole": pigeonhole,
            "imapclient": pkg("IMAPClient"), "aiosmtpd": pkg("aiosmtpd"), "awayd": pkg("awayd"),
            "sqlite": sqlite3.sqlite_version,
            "py-spy": "installed" if shutil.which("py-spy") else "not installed"}


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def summary(result: dict[str, Any]) -> str:
    lines = [f"awayd benchmark ({result['mode']}, {result['settings']['runs']} run(s) per figure;"
             f" median [min-max]; ratio = awayd / baseline of the same run)", ""]
    for fig in result["figures"]:
        line = f"{fig['name']}: {_num(fig['median'])} {fig['unit']} [{_num(fig['min'])}-{_num(fig['max'])}]"
        if "ratio" in fig and fig["ratio"]["median"] is not None:
            ratio = fig["ratio"]
            line += (f"; vs {fig['baseline']['name']} {_num(fig['baseline']['median'])}: ratio"
                     f" {ratio['median']:.3g} [{ratio['min']:.3g}-{ratio['max']:.3g}]")
        if "target" in fig:
            line += f"; target {fig['target']}: {'MET' if fig['met'] else 'MISSED'}"
        if fig.get("note"):
            line += f"  ({fig['note']})"
        lines.append(line)
    lines.append("")
    for check in result["checks"]:
        lines.append(f"[{'ok' if check['ok'] else 'FAIL'}] {check['what']}")
    lines.append(f"\nall reply counts exact: {result['all_exact']}; took {result['elapsed_s']:.0f} s")
    return "\n".join(lines)

"""Checks that span keys of a rule: template names, dates in order, a trial render per key."""

from __future__ import annotations

import difflib
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from awayd.config.model import Config
from awayd.config.read import Node, Problems
from awayd.core.templates import VARIABLES, undeclared_names


def report_undeclared(node: Node, key: str, source: str, *, html: bool) -> bool:
    """Report each name the template reads that no reply provides; True if there was one."""
    names = undeclared_names(source, html=html)
    for name in names:
        close = difflib.get_close_matches(name, VARIABLES, n=1)
        node.problems.note(node.sub(key), f"{name!r} is undefined; " + (
            f"did you mean {close[0]!r}?" if close else f"the variables are {', '.join(VARIABLES)}"))
    return bool(names)


def ends_before_start(start: date | datetime, until: date | datetime, tz: ZoneInfo) -> bool:
    """True when `until` ends before `from` begins, also when one is a date and the other a
    datetime."""
    if type(start) is type(until):
        return until < start
    # A date is a whole local day and `until` includes its day: compare the instants.
    begin = start if isinstance(start, datetime) else datetime.combine(start, time.min, tz)
    end = until if isinstance(until, datetime) else datetime.combine(
        until + timedelta(days=1), time.min, tz)
    return end <= begin


def trial_render_at_keys(config: Config, nodes: list[Node], problems: Problems) -> None:
    """Render every template once against a sample; each failure is a problem at its key."""
    from awayd.config.check import trial_render  # noqa: PLC0415 (needs the core)

    for node, mailbox in zip(nodes, config.mailboxes, strict=True):
        raw = node.data.get("rules")
        names = [str(r.get("name")) if isinstance(r, dict) else None
                 for r in (raw if isinstance(raw, list) else [])]
        for rule in mailbox.rules:
            where = (f"{node.path}.rules[{names.index(rule.name)}]" if rule.name in names
                     else f"{node.path}.rules")
            for key, message in trial_render(mailbox, rule):
                problems.note(f"{where}.{key}" if key else where, message)

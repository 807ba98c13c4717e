"""The mailbox list in start and reload log lines stays short on a mail host."""

from __future__ import annotations

from awayd.config.load import parse_config
from awayd.service import LOGGED_NAMES, mailbox_names


def config_of(n: int):
    boxes = "".join(f"  - {{name: m{i}, address: m{i}@example.org}}\n" for i in range(n))
    return parse_config("mailboxes:\n" + boxes)


def test_a_few_mailboxes_are_all_named() -> None:
    assert mailbox_names(config_of(3)) == ["m0", "m1", "m2"]


def test_many_mailboxes_are_cut_with_a_count() -> None:
    names = mailbox_names(config_of(LOGGED_NAMES + 7))
    assert names[:2] == ["m0", "m1"]
    assert len(names) == LOGGED_NAMES + 1
    assert names[-1] == "... 7 more"

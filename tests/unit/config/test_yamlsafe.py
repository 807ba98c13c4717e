"""Tests for awayd.config.yamlsafe: alias bombs are refused while composing, ordinary aliases work."""

from __future__ import annotations

import pytest
import yaml

from awayd.config.load import parse_config
from awayd.config.yamlsafe import MAX_NODES, LimitedSafeLoader
from awayd.errors import ConfigError


def bomb(levels: int) -> str:
    """The "billion laughs" shape: each level is nine aliases of the one before."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    lines.append(f"mailboxes: *a{levels}")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_as_a_config_error_with_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(bomb(9), "bomb.yaml")
    message = str(info.value)
    assert message.startswith("bomb.yaml: line 6, column")  # a5 is the first level past the budget
    assert "aliases are expanded" in message


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    with pytest.raises(ConfigError, match="refers to the node that contains it"):
        parse_config("mailboxes: &m [*m]\n", "loop.yaml")


def test_a_document_just_under_the_budget_loads() -> None:
    items = ", ".join(["*x"] * (MAX_NODES // 12))
    data = yaml.load(f"x: &x [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ny: [{items}]\n",
                     Loader=LimitedSafeLoader)
    assert len(data["y"]) == MAX_NODES // 12


def test_ordinary_aliases_still_share_settings_between_mailboxes() -> None:
    config = parse_config("""
mailboxes:
  - {name: a, address: a@example.org, rules: &rules [{name: away, text: "Back soon."}]}
  - {name: b, address: b@example.org, rules: *rules}
""", "shared.yaml")
    assert [mb.rules[0].name for mb in config.mailboxes] == ["away", "away"]

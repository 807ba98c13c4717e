"""README.md and config.example.yaml stay in step with the config schema, the CLI and the reasons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from awayd.cli.main import build_parser
from awayd.config.load import SCHEMA, load_config, parse_config
from awayd.core import reasons

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
KEYS = sorted({(section, key) for section, keys in SCHEMA.items() for key in keys})


def test_example_config_loads() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert config.mailboxes


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_every_schema_key_is_in_the_example_config(section: str, key: str) -> None:
    assert re.search(rf"(^|[\s{{,]){re.escape(key)}:", EXAMPLE, re.MULTILINE), key


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_every_schema_key_is_in_the_readme_reference(section: str, key: str) -> None:
    assert f"`{key}`" in README, key


@pytest.mark.parametrize("reason", reasons.ALL)
def test_every_reason_code_is_in_the_readme(reason: str) -> None:
    assert f"`{reason}`" in README


def test_every_cli_command_is_in_the_readme() -> None:
    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions)  # argparse has no public view
    for name in sub.choices:
        assert f"`awayd {name}" in README, name


@pytest.mark.parametrize("block", re.findall(r"```yaml\n(.*?)```", README, re.DOTALL))
def test_every_yaml_example_in_the_readme_is_a_valid_config(block: str) -> None:
    assert parse_config(block, "README.md").mailboxes

"""Line and column of every key and list item in a YAML text, by the config's path syntax."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from awayd.config.read import Problems

#: A walk never records more than this many paths (a config has a few hundred).
MAX_MARKS = 100_000


def yaml_marks(text: str) -> dict[str, tuple[int, int]]:
    """Map `mailboxes[0].rules[1].text` style paths to 1-based (line, column) of the key or item.

    Composes the node tree only (no values are built). A node reached again through an alias
    is not walked twice, so an alias bomb costs no more than its text. Unparsable YAML gives {}.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    marks: dict[str, tuple[int, int]] = {}
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    while stack and len(marks) < MAX_MARKS:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                sub = f"{path}.{key.value}" if path else str(key.value)
                marks.setdefault(sub, (key.start_mark.line + 1, key.start_mark.column + 1))
                stack.append((value, sub))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = f"{path}[{i}]"
                marks.setdefault(sub, (item.start_mark.line + 1, item.start_mark.column + 1))
                stack.append((item, sub))
    return marks


def located(source: str, text: str | None, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """`source: path: message (line L, column C)` for each (path, message), in file order."""
    problems = Problems(source)
    for path, message in pairs:
        problems.note(path, message)
    return problems.located(yaml_marks(text) if text is not None else {})


def read_text(path: Path) -> str | None:
    """The config text again, for positions; None when it cannot be read now."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None

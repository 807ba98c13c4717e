"""A safe YAML loader that refuses documents whose aliases expand past a node budget."""

from __future__ import annotations

from typing import Any

import yaml

#: Nodes a document may hold once every alias is counted as the copy it stands for. A large
#: real config (1,000 mailboxes sharing settings through aliases) stays far below; a
#: "billion laughs" document exceeds it within a few aliases and is refused before any of it
#: is constructed or traversed.
MAX_NODES = 200_000


class ExpansionError(yaml.MarkedYAMLError):
    """The document is too large once aliases are expanded, or an alias refers to itself."""


class LimitedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts each alias as the size of what it refers to.

    Sizes are computed while composing, once per anchored node, so the check costs time
    proportional to the document as written, not as expanded.
    """

    max_nodes = MAX_NODES

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded = 0
        self._sizes: dict[int, int] = {}

    def compose_document(self) -> Any:
        self._expanded = 0
        self._sizes = {}
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:  # the anchor is still being composed: the alias is inside it
                raise ExpansionError(None, None, "an alias refers to the node that contains it",
                                     mark)
            self._grow(size, mark)
            return node
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        before = self._expanded
        node = super().compose_node(parent, index)
        self._grow(1, mark)
        self._sizes[id(node)] = self._expanded - before
        return node

    def _grow(self, size: int, mark: Any) -> None:
        self._expanded += size
        if self._expanded > self.max_nodes:
            raise ExpansionError(
                None, None,
                f"refused: more than {self.max_nodes:,} values once aliases are expanded "
                "(an alias bomb?)", mark)

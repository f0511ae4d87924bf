"""Reads a YAML file the operator wrote, within bounds that no mistake can blow up.

``yaml.safe_load`` refuses to build arbitrary objects, but not to build big ones: ten levels of
aliases each used ten times stand for 10^10 nodes (the "billion laughs"), which every walk over the
document then copies, and a few kB of ``[[[[...`` nest deeper than Python's recursion limit. So the
file is read up to ``max_bytes``, nesting is refused past ``MAX_DEPTH`` levels before the composer
recurses into it, and the size of the document with every alias expanded (counted without
expanding anything) must stay under ``MAX_NODES``. Aliases themselves stay allowed: a few anchors
for shared settings are legitimate YAML.

Every failure, whatever its origin (a syntax error, a date that does not exist, an integer too long
for ``int``), comes out as one ``YAMLRefused`` with a one-line reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_BYTES = 1 << 20  # a configuration is a few kB; 1 MiB still holds thousands of gateways
MAX_DEPTH = 64  # the exporter's own files nest 4 levels deep
MAX_NODES = 200_000  # nodes after alias expansion: ~30 per gateway, so thousands of gateways
_MAX_REASON = 200  # characters of a parser's message quoted in the error
LIBYAML_TOO_DEEP = "maximum nesting depth"  # in libyaml's message for its own nesting bound


class YAMLRefused(Exception):
    """The file could not be read as bounded YAML; the message is one line."""


class _BoundedLoader(yaml.SafeLoader):
    """The pure-Python loader, bounded as it composes."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: object) -> Node:
        # The composer recurses once per level: refuse before Python's recursion limit is near.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YAMLRefused(_too_deep(mark))
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node:
        node = super().compose_document()
        _expanded_size(node)
        return node


class _BoundedCLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """libyaml's loader, ten times quicker on a fleet's file (0.02 s against 0.24 s for 800
    gateways, at every start and reload). It composes in C, so the nesting is checked on the
    parser's events before (``_check_depth``), and the aliases on the composed document."""

    def get_single_node(self) -> Node:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node)
        return node


def _check_depth(text: str) -> None:
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YAMLRefused(_too_deep(event.start_mark))
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as e:
        # libyaml's scanner reads a run of "[" ahead to its own bound (1,000 levels) before the
        # first event: past ours too.
        if LIBYAML_TOO_DEEP in str(e.problem) and e.problem_mark is not None:
            raise YAMLRefused(_too_deep(e.problem_mark)) from None
        raise


def _too_deep(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}: nested deeper than {MAX_DEPTH} levels"


def _expanded_size(root: Node) -> int:
    """Nodes in the document once every alias is replaced by a copy of its anchor, refused past
    ``MAX_NODES`` or, nested, past ``MAX_DEPTH`` levels of collections: an anchor nested in the
    next one's nesting adds its depth to that one's, which no check of the text sees.

    Aliases make the node graph a DAG (or a cycle, for an alias inside its own anchor); the size
    and depth of each node are computed once, so this costs time in the number of distinct nodes
    only."""
    sizes: dict[int, tuple[int, int]] = {}  # per node: (nodes, levels of collections) expanded
    open_nodes: set[int] = set()

    def size(node: Node) -> tuple[int, int]:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YAMLRefused(f"line {node.start_mark.line + 1}: an alias refers to its own anchor")
        open_nodes.add(key)
        total, depth = 1, 0
        if isinstance(node, (SequenceNode, MappingNode)):
            children = (
                node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
            )
            for child in children:
                child_total, child_depth = size(child)
                total += child_total
                depth = max(depth, child_depth)
            depth += 1
        if depth > MAX_DEPTH:
            raise YAMLRefused(_too_deep(node.start_mark))
        if total > MAX_NODES:
            raise YAMLRefused(
                f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_NODES} nodes"
            )
        open_nodes.discard(key)
        sizes[key] = total, depth
        return total, depth

    return size(root)[0]


def load_yaml(path: Path, max_bytes: int = MAX_BYTES) -> Any:
    """The document in ``path``; ``OSError`` when it cannot be read, else ``YAMLRefused``."""
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise YAMLRefused(f"larger than {max_bytes // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YAMLRefused(f"not UTF-8 text (byte {e.start})") from None
    return loads(text)


def loads(text: str) -> Any:
    try:
        if yaml.__with_libyaml__:
            _check_depth(text)
            return yaml.load(text, Loader=_BoundedCLoader)  # a CSafeLoader subclass
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass
    except YAMLRefused:
        raise
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise YAMLRefused(
            f"not valid YAML: {line}{_one_line(e.problem or e.context or 'syntax error')}"
        ) from None
    except RecursionError:
        raise YAMLRefused(f"nested deeper than {MAX_DEPTH} levels") from None
    except Exception as e:
        # The constructors raise plain ValueError for a 31st of February or an integer of
        # 5,000 digits; the type says enough, and the value may be a secret.
        raise YAMLRefused(f"not valid YAML: a value YAML cannot represent ({type(e).__name__})") from None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:_MAX_REASON]

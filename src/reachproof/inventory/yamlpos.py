"""Positioned YAML: compose a document into nodes and read them while collecting diagnostics.

PyYAML's constructors lose positions and silently keep the last of two equal mapping keys, so
the inventory is read from the composed node tree instead: every node carries its start mark,
duplicate keys are still visible, and scalars are taken as the text the user wrote (an IPv6
address such as `1:2:3:4:5:6:7:8` would otherwise resolve to a base-60 integer).

A `NodeReader` never raises for bad input: each check records a `Diagnostic` and returns None,
so one pass reports every problem of the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reachproof.errors import Diagnostic, InputError, InventoryError, Pos

NULL_TAG = "tag:yaml.org,2002:null"
_DIGITS = re.compile(r"[0-9]{1,10}")


def compose(
    text: str,
    path: str,
    error: Callable[[list[Diagnostic], str], InputError] = InventoryError,
) -> Node | None:
    """Compose one YAML document; a malformed one raises `error` (the file's own kind of input
    error, InventoryError by default) at the error's mark."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark is not None else Pos(1, 1)
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "malformed YAML"
        raise error([Diagnostic.at(path, pos, f"invalid YAML: {problem}")], text) from exc
    except yaml.reader.ReaderError as exc:
        pos = offset_pos(text, exc.position)
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        message = f"invalid YAML: character {char!r} is not allowed ({exc.reason})"
        raise error([Diagnostic.at(path, pos, message)], text) from exc
    except yaml.YAMLError as exc:
        diagnostic = Diagnostic.at(path, Pos(1, 1), f"invalid YAML: {exc}")
        raise error([diagnostic], text) from exc
    except RecursionError as exc:
        diagnostic = Diagnostic.at(path, Pos(1, 1), "invalid YAML: nested too deeply")
        raise error([diagnostic], text) from exc


def offset_pos(text: str, offset: int) -> Pos:
    """The 1-based line and column of a character offset in `text`."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Pos(line, column)


def pos_of(node: Node) -> Pos:
    """Where a node starts, 1-based (PyYAML marks are 0-based)."""
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def describe(node: Node) -> str:
    """What the user wrote, for 'expected X, got Y' messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, ScalarNode) and node.tag == NULL_TAG:
        return "nothing"
    text = str(node.value)
    return repr(text if len(text) <= 40 else text[:37] + "...")


class NodeReader:
    """Reads typed values out of YAML nodes, recording what is wrong and where."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def error(self, where: Node | Pos, message: str) -> None:
        pos = where if isinstance(where, Pos) else pos_of(where)
        self.diagnostics.append(Diagnostic.at(self.path, pos, message))

    def entries(self, node: Node, what: str) -> list[tuple[str, ScalarNode, Node]] | None:
        """A mapping's (key, key node, value node) triples; duplicate keys are reported, dropped."""
        if not isinstance(node, MappingNode):
            self.error(node, f"{what}: expected a mapping, got {describe(node)}")
            return None
        seen: dict[str, ScalarNode] = {}
        out: list[tuple[str, ScalarNode, Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == NULL_TAG:
                self.error(key_node, f"{what}: expected a name as key, got {describe(key_node)}")
                continue
            key = key_node.value
            first = seen.get(key)
            if first is not None:
                line = first.start_mark.line + 1
                self.error(key_node, f"duplicate key {key!r} in {what} (first at line {line})")
                continue
            seen[key] = key_node
            out.append((key, key_node, value_node))
        return out

    def fields(
        self,
        node: Node,
        what: str,
        where: Node | Pos,
        required: Collection[str],
        optional: Collection[str],
    ) -> dict[str, Node] | None:
        """An object's fields by key; unknown and missing keys are reported (missing at `where`)."""
        entries = self.entries(node, what)
        if entries is None:
            return None
        allowed = [*required, *optional]
        out: dict[str, Node] = {}
        for key, key_node, value_node in entries:
            if key not in allowed:
                self.error(
                    key_node,
                    f"unknown key {key!r} in {what} (expected one of: {', '.join(allowed)})",
                )
                continue
            out[key] = value_node
        missing = [key for key in required if key not in out]
        if missing:
            keys = ", ".join(repr(key) for key in missing)
            self.error(
                where, f"{what}: missing required key{'s' if len(missing) > 1 else ''} {keys}"
            )
        return out

    def items(self, node: Node, what: str) -> Iterator[Node]:
        """The items of a list (nothing, after reporting, when the node is not a list)."""
        if not isinstance(node, SequenceNode):
            self.error(node, f"{what}: expected a list, got {describe(node)}")
            return iter(())
        return iter(node.value)

    def string(self, node: Node, what: str) -> str | None:
        """A non-empty scalar, as written."""
        if not isinstance(node, ScalarNode) or node.tag == NULL_TAG or not node.value:
            self.error(node, f"{what}: expected a string, got {describe(node)}")
            return None
        if "\x00" in node.value:
            self.error(node, f"{what}: a NUL character is not allowed")
            return None
        return str(node.value)

    def name(self, node: Node, what: str, pattern: re.Pattern[str], rule: str) -> str | None:
        """A string that must match `pattern` (`rule` says in words what is allowed)."""
        text = self.string(node, what)
        if text is None:
            return None
        if not pattern.fullmatch(text):
            self.error(node, f"{what}: {text!r} is not a valid name ({rule})")
            return None
        return text

    def integer(self, node: Node, what: str, low: int, high: int) -> int | None:
        """A decimal integer in [low, high]."""
        if not isinstance(node, ScalarNode) or not _DIGITS.fullmatch(node.value):
            self.error(node, f"{what}: expected an integer {low}-{high}, got {describe(node)}")
            return None
        value = int(node.value)
        if not low <= value <= high:
            self.error(node, f"{what}: expected an integer {low}-{high}, got {value}")
            return None
        return value

    def strings(self, node: Node, what: str) -> list[tuple[str, Node]]:
        """One string or a list of strings, each with its node."""
        if isinstance(node, SequenceNode):
            found = ((self.string(item, what), item) for item in node.value)
            return [(text, item) for text, item in found if text is not None]
        text = self.string(node, what)
        return [] if text is None else [(text, node)]

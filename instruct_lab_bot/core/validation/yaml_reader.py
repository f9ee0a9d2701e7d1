"""YAML read the way `yaml.safe_load` reads it, but bounded and with marks: a loader that stops
at MAX_DEPTH, the size of the data once aliases are expanded (before anything walks it), the
node at a JSON path, and character positions mapped to the lines GitHub shows."""

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.tokens import AliasToken

from instruct_lab_bot.core.messages.validation import syntax_unreadable
from instruct_lab_bot.core.validation.limits import MAX_CHARS, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES


class TooDeep(Exception):
    def __init__(self, index: int) -> None:
        super().__init__("nested too deeply")
        self.index = index


class Recursive(Exception):
    def __init__(self, node: Node) -> None:
        super().__init__("recursive alias")
        self.node = node


class Loader(yaml.SafeLoader):
    """`yaml.SafeLoader` that stops at MAX_DEPTH (its composer recurses) and turns value
    errors from constructors (bad dates, 5000-digit ints) into marked errors."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise TooDeep(self.peek_event().start_mark.index)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as error:
            problem = syntax_unreadable(str(error))
            raise ConstructorError(None, None, problem, node.start_mark) from error


def error_mark(error: MarkedYAMLError) -> Mark | None:
    """Where to point: where a failed token began (an unclosed quote, a key missing its
    colon), else where the parser gave up."""
    context = error.context or ""
    if context.startswith("while scanning") and error.context_mark is not None:
        return error.context_mark
    return error.problem_mark or error.context_mark


def first_alias_index(text: str) -> int | None:
    """Character index of the first `*alias` in `text` (where an alias bomb starts)."""
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        if isinstance(token, AliasToken):
            return int(token.start_mark.index)
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: Node) -> tuple[int, int, int]:
    """(nodes, scalar chars, depth) of the data once aliases are expanded, in linear time and
    without recursion; raises Recursive for an alias inside its own anchor."""
    cap = MAX_NODES + MAX_CHARS + 1
    done: dict[int, tuple[int, int, int]] = {}
    active: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            kids = [done[id(c)] for c in _children(node)]
            own = len(node.value) if isinstance(node, ScalarNode) else 0
            done[key] = (
                min(cap, 1 + sum(k[0] for k in kids)),
                min(cap, own + sum(k[1] for k in kids)),
                1 + max((k[2] for k in kids), default=0),
            )
            active.discard(key)
            continue
        if key in done:
            continue
        if key in active:
            raise Recursive(node)
        active.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(_children(node)))
    return done[id(root)]


@dataclass(frozen=True)
class Found:
    node: Node | None  # the value at the path (or the deepest one found)
    key: Node | None  # the key node when the path ends at a mapping key


def locate(root: Node, at: Sequence[Any]) -> Found:
    """The node at a JSON path, keeping the last of duplicated keys as PyYAML does."""
    node: Node = root
    key: Node | None = None
    for step in at:
        if isinstance(node, MappingNode):
            pairs = [
                (k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == str(step)
            ]
            if not pairs:
                return Found(node, key)
            key, node = pairs[-1]
        elif isinstance(node, SequenceNode) and isinstance(step, int) and step < len(node.value):
            key, node = None, node.value[step]
        else:
            return Found(node, key)
    return Found(node, key)


class Lines:
    """Line numbers as GitHub counts them (by "\\n") for text read like CI reads it.

    CI reads files with Python's universal newlines, so CRLF and lone CR become LF before
    YAML and yamllint see the text; YAML also breaks lines at U+0085/U+2028/U+2029. Positions
    are mapped by character index, never by PyYAML's own line count.
    """

    def __init__(self, raw: str) -> None:
        self.text = raw.replace("\r\n", "\n").replace("\r", "\n")
        self.count = max(1, raw.count("\n") + (0 if raw.endswith("\n") else 1))
        self._lone_cr = re.search(r"\r(?!\n)", raw) is not None
        self._raw = raw

    def clamp(self, line: int) -> int:
        return min(max(1, line), self.count)

    def line_of(self, index: int) -> int:
        """GitHub line of a character index into the normalised text."""
        return self.from_text_line(self.text.count("\n", 0, max(0, index)) + 1)

    def from_text_line(self, line: int) -> int:
        """GitHub line of a line number in the normalised text."""
        if self._lone_cr:
            breaks = re.finditer(r"\r\n|\r|\n", self._raw)
            newlines = sum("\n" in m.group() for m in itertools.islice(breaks, max(0, line - 1)))
            line = newlines + 1
        return self.clamp(line)


class YamlRefused(Exception):
    """`load_bounded` could not or would not read the text (syntax, size, depth, aliases)."""


def load_bounded(text: str, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """`yaml.safe_load` for YAML from a pull request, with the validator's bounds: at most
    `max_bytes` of text, MAX_DEPTH levels, MAX_NODES nodes and MAX_CHARS characters once
    aliases are expanded, no recursive aliases. Raises only YamlRefused."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlRefused(f"larger than {max_bytes} bytes")
    loader: Loader | None = None
    try:
        loader = Loader(text)
        root = loader.get_single_node()
        if root is None:
            return None
        nodes, chars, depth = expanded_size(root)
        if nodes > MAX_NODES or chars > MAX_CHARS or depth > MAX_DEPTH:
            raise YamlRefused("aliases expand too much")
        return loader.construct_document(root)
    except (yaml.YAMLError, TooDeep, Recursive, RecursionError) as error:
        raise YamlRefused(str(error)) from error
    finally:
        if loader is not None:
            loader.dispose()

"""Comment text → bot commands (pure).

A command is `@<username> <command> [args]` at the start of a line of a paragraph, as
CommonMark (markdown-it-py) parses the comment. Fenced code (backticks or tildes, any fence
length, inside list items too), indented code, HTML blocks and comments, inline code spans
and quoted replies (`> ...`, lazy continuation lines included) are not paragraphs text, so
quoting someone's earlier command, pasting a log or hiding a line in a comment never starts
a GPU job.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

from instruct_lab_bot.core.command_table import KNOWN_COMMANDS, CommandSpec, lookup

__all__ = [
    "Command",
    "mention_pattern",
    "mentions",
    "parse_commands",
    "suggest",
]

#: What a command keeps of its line: the name and at most `MAX_ARGS` arguments, each cut to
#: `MAX_WORD_CHARS` characters, so a stored intent never grows with the comment.
MAX_ARGS = 20
MAX_WORD_CHARS = 200

_LINE_START_MENTION = "ilab_line_start_mention"


def _line_start_mention(state: StateInline, silent: bool) -> bool:
    """An inline rule that marks an `@` beginning a line of inline text. Code spans, HTML
    comments and autolinks are consumed whole by their own rules, so an `@` inside them is
    never seen here."""
    src, pos = state.src, state.pos
    if src[pos] != "@" or src[src.rfind("\n", 0, pos) + 1 : pos].strip(" \t"):
        return False
    if not silent:
        breaks = state.env.setdefault("ilab_newlines", {})
        newlines = breaks.get(src)
        if newlines is None:
            newlines = breaks[src] = [i for i, c in enumerate(src) if c == "\n"]
        token = state.push(_LINE_START_MENTION, "", 0)
        token.meta = {"line": bisect.bisect_left(newlines, pos)}
    state.pos += 1
    return True


_MARKDOWN = MarkdownIt("commonmark")
_MARKDOWN.inline.ruler.before("text", _LINE_START_MENTION, _line_start_mention)


def _paragraph_mention_lines(body: str) -> Iterator[int]:
    """0-based numbers of the lines (of `body` split at "\n") that start a line of paragraph
    text with an `@`, outside block quotes, in document order."""
    env: dict[str, Any] = {}
    quotes = 0
    seen: set[int] = set()
    paragraph_start: int | None = None
    for token in _MARKDOWN.parse(body, env):
        if token.type == "blockquote_open":
            quotes += 1
        elif token.type == "blockquote_close":
            quotes -= 1
        elif token.type == "paragraph_open":
            paragraph_start = token.map[0] if token.map and not quotes else None
        elif token.type == "inline" and paragraph_start is not None:
            for child in token.children or ():
                if child.type == _LINE_START_MENTION:
                    line = paragraph_start + int(child.meta["line"])
                    if line not in seen:
                        seen.add(line)
                        yield line
            paragraph_start = None


def _normalise(body: str) -> str:
    """CRLF to LF; a lone CR becomes a space, so lines are exactly `body.split("\n")`."""
    return body.replace("\r\n", "\n").replace("\r", " ")


@dataclass(frozen=True)
class Command:
    """One command line from a comment; `name` is lower-case, `args` as typed."""

    name: str
    args: tuple[str, ...]
    line: int
    legacy: bool = False  # addressed by a former name of the bot (answered with a note)

    @property
    def known(self) -> bool:
        return self.spec is not None

    @property
    def spec(self) -> CommandSpec | None:
        """Its row in the command table (None for an unknown command)."""
        return lookup(self.name)


def mention_pattern(username: str, aliases: Sequence[str] = ()) -> re.Pattern[str]:
    """`@username` or `@alias` (case-insensitive) at a line start, not a prefix of a longer
    login; the group `name` says which."""
    names = "|".join(re.escape(n) for n in (username, *aliases))
    return re.compile(
        rf"^[ \t]{{0,3}}@(?P<name>{names})(?![A-Za-z0-9-])(?:\[bot\])?(?P<rest>[^\n]*)$",
        re.IGNORECASE,
    )


def parse_commands(
    body: str, username: str, *, limit: int = 10, aliases: Sequence[str] = ()
) -> list[Command]:
    """Every command addressed to `username` (or a former name, `aliases`) in a comment
    body, at most `limit` of them."""
    commands: list[Command] = []
    for number, match in _mentions(body, username, aliases):
        words = match.group("rest").split()
        if not words:
            continue
        name, args = words[0][:MAX_WORD_CHARS].lower(), words[1 : MAX_ARGS + 1]
        legacy = match.group("name").lower() != username.lower()
        commands.append(Command(name, tuple(a[:MAX_WORD_CHARS] for a in args), number, legacy))
        if len(commands) >= limit:
            break
    return commands


def _mentions(
    body: str, username: str, aliases: Sequence[str] = ()
) -> Iterator[tuple[int, re.Match[str]]]:
    """(1-based line number, match) of each paragraph line that starts with the mention."""
    pattern = mention_pattern(username, aliases)
    text = _normalise(body)
    if "@" not in text:
        return
    lines = text.split("\n")
    if _could_hide_a_line(text):
        indexes: Iterator[int] | range = _paragraph_mention_lines(text)
    else:  # every line is paragraph text: the CommonMark parse would find the same lines
        indexes = range(len(lines))
    for index in indexes:
        match = pattern.match(lines[index]) if index < len(lines) else None
        if match:
            yield index + 1, match


#: What could make a line that starts with the mention something other than a line of
#: paragraph text outside a quote: code (backticks, a `~~~` fence, a tab's indentation),
#: HTML, autolinks, quotes (`>`, lazy lines too), links and reference definitions (`[`: a
#: title may span lines), a setext underline (the paragraph above becomes a heading), and
#: lists nested deep enough to reach markdown-it's nesting limit (two markers on one line,
#: or 8 spaces of indentation), past which it stops parsing. Without any of these every
#: line is paragraph text, so the parse is skipped (most comments): the property test in
#: tests/test_comment_fast_path.py checks the two agree.
_BLOCK_HINT = re.compile(
    r"[`<>\[\t]|~~~|^ {0,3}(?:=+|-+) *$|^ {8}"
    r"|^ *(?:[-+*]|[0-9]{1,9}[.)]) +(?:[-+*]|[0-9]{1,9}[.)])(?: |$)",
    re.MULTILINE,
)


def _could_hide_a_line(text: str) -> bool:
    return _BLOCK_HINT.search(text) is not None


def suggest(name: str) -> str | None:
    """The known command closest to a mistyped one ("did you mean ...?")."""
    close = difflib.get_close_matches(name.lower(), KNOWN_COMMANDS, n=1, cutoff=0.6)
    return close[0] if close else None


def mentions(body: str, username: str, aliases: Sequence[str] = ()) -> bool:
    """Whether the comment addresses the bot at all (to answer a bare mention with help)."""
    return next(_mentions(body, username, aliases), None) is not None

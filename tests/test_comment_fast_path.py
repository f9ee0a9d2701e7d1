"""The comment parser skips the CommonMark parse when nothing in the comment could make a
mention line anything but paragraph text (`_could_hide_a_line`). These tests prove the
shortcut exact: on generated comments the lines it takes are the lines the full parse
finds, and each construct the pre-check looks for is one that hides a mention line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instruct_lab_bot.core.comment_parser import (
    _could_hide_a_line,
    _mentions,
    _normalise,
    _paragraph_mention_lines,
    mention_pattern,
    parse_commands,
)
from tests.fixtures.bot import BOT_NAME, MENTION

ALIAS = "old-bot-name"

#: Lines that cannot hide a mention line: the shortcut applies to comments made of these.
PLAIN = [
    f"{MENTION} generate",
    f"   {MENTION} train --epochs 3",
    f"{MENTION.upper()} test",
    f"{MENTION}-other generate",
    f"@{ALIAS} generate",
    f"thanks {MENTION} generate",
    f"{MENTION}",
    "Looks right to me.",
    "",
    "   ",
    "# A heading",
    "***",
    "- an item",
    "  1. ordered",
    "* starred",
    "2024 was a year",
    "a *line with* _emphasis_ \\",
    "trailing spaces  ",
    "&amp; &#64;",
    "(parens) {braces} ~tilde ==equal --dash",
]

#: Lines that can: fences, indented code, quotes, HTML, links, setext underlines, nesting.
RISKY = [
    "```",
    f"{MENTION}[bot] chat",
    "~~~",
    "`code",
    f"\t{MENTION} generate",
    f"    {MENTION} generate",
    "> quoted",
    ">",
    "<div>",
    "<!--",
    "-->",
    "<https://example.com",
    "[label]: /url 'a title",
    "[link](/url 'a title",
    "'",
    f"[label]: /url 'a title\n{MENTION} generate'",
    f'[link](/url "a title\n{MENTION} generate")',
    "===",
    "---",
    "-",
    "- - nested",
    "1. * nested",
    "        deep",
    "  - a",
    "    - b",
    "      - c",
    "\n".join(" " * (2 * depth) + "- deep" for depth in range(11)),
]

safe_comment = st.lists(st.sampled_from(PLAIN), max_size=12)
any_comment = st.lists(st.sampled_from(PLAIN + RISKY), max_size=12)
#: One risky line among plain ones: each hint on its own, where only it decides.
one_risky = st.tuples(safe_comment, st.sampled_from(RISKY), safe_comment).map(
    lambda parts: [*parts[0], parts[1], *parts[2]]
)


def _full(body: str) -> list[tuple[int, str]]:
    """What the CommonMark parse alone finds (the parser before the shortcut)."""
    text = _normalise(body)
    lines = text.split("\n")
    pattern = mention_pattern(BOT_NAME, [ALIAS])
    found = []
    for index in _paragraph_mention_lines(text):
        match = pattern.match(lines[index])
        if match:
            found.append((index + 1, match.group(0)))
    return found


def _ours(body: str) -> list[tuple[int, str]]:
    return [(n, m.group(0)) for n, m in _mentions(body, BOT_NAME, [ALIAS])]


@settings(max_examples=600, deadline=None, database=None)
@given(lines=st.one_of(safe_comment, one_risky, any_comment), crlf=st.booleans())
def test_the_shortcut_finds_what_the_parse_finds(lines: list[str], crlf: bool) -> None:
    body = ("\r\n" if crlf else "\n").join(lines)
    assert _ours(body) == _full(body)


@settings(max_examples=200, deadline=None, database=None)
@given(lines=safe_comment)
def test_plain_comments_take_the_shortcut(lines: list[str]) -> None:
    """Not a vacuous property: comments of plain lines never reach the parse."""
    assert not _could_hide_a_line("\n".join(lines))


@pytest.mark.parametrize(
    "body",
    [
        f"```\n{MENTION} generate\n```",
        f"~~~\n{MENTION} generate\n~~~",
        f"`a\n{MENTION} generate`",
        f"text\n\n\t{MENTION} generate",
        f"> quoted\n{MENTION} generate",
        f"<div>\n{MENTION} generate",
        f"<!--\n{MENTION} generate\n-->",
        f'[a](/u "t\n{MENTION} generate")',
        f"[a]: /u 't\n{MENTION} generate'",
        f"{MENTION} generate\n===",
        f"{MENTION} generate\n---",
        "- " * 12 + f"x\n{MENTION} generate",
    ],
)
def test_each_hint_is_a_construct_that_hides_the_line(body: str) -> None:
    """Taking every mention line here would start a job the full parse does not see."""
    pattern = mention_pattern(BOT_NAME)
    naive = [line for line in body.split("\n") if pattern.match(line)]
    assert naive
    assert _could_hide_a_line(body)
    assert _full(body) == []
    assert parse_commands(body, BOT_NAME) == []

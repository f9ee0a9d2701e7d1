"""Comment text → bot commands (pure).

A command is `@<username> <command> [args]` at the start of a line. Lines inside fenced code
blocks and quoted replies (`> ...`) are skipped, so quoting someone's earlier command or pasting
a log never starts a GPU job.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from instruct_lab_bot.core.command_table import KNOWN_COMMANDS, CommandSpec, lookup

__all__ = [
    "Command",
    "mention_pattern",
    "mentions",
    "parse_commands",
    "suggest",
]

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")


@dataclass(frozen=True)
class Command:
    """One command line from a comment; `name` is lower-case, `args` as typed."""

    name: str
    args: tuple[str, ...]
    line: int

    @property
    def known(self) -> bool:
        return self.spec is not None

    @property
    def spec(self) -> CommandSpec | None:
        """Its row in the command table (None for an unknown command)."""
        return lookup(self.name)


def mention_pattern(username: str) -> re.Pattern[str]:
    """`@username` (case-insensitive) at a line start, not a prefix of a longer login."""
    return re.compile(
        rf"^[ \t]{{0,3}}@{re.escape(username)}(?![A-Za-z0-9-])(?:\[bot\])?(?P<rest>[^\n]*)$",
        re.IGNORECASE,
    )


def parse_commands(body: str, username: str, *, limit: int = 10) -> list[Command]:
    """Every command addressed to `username` in a comment body, at most `limit` of them."""
    pattern = mention_pattern(username)
    commands: list[Command] = []
    fence: str | None = None
    for number, line in enumerate(body.replace("\r\n", "\n").split("\n"), start=1):
        opening = _FENCE.match(line)
        if opening:
            marker = opening.group(1)
            if fence is None:
                fence = marker[0] * len(marker)
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is not None:
            continue
        match = pattern.match(line)
        if not match:
            continue
        words = match.group("rest").split()
        if not words:
            continue
        commands.append(Command(name=words[0].lower(), args=tuple(words[1:]), line=number))
        if len(commands) >= limit:
            break
    return commands


def suggest(name: str) -> str | None:
    """The known command closest to a mistyped one ("did you mean ...?")."""
    close = difflib.get_close_matches(name.lower(), KNOWN_COMMANDS, n=1, cutoff=0.6)
    return close[0] if close else None


def mentions(body: str, username: str) -> bool:
    """Whether the comment addresses the bot at all (to answer a bare mention with help)."""
    return any(mention_pattern(username).match(line) for line in body.splitlines())

"""The one welcome comment a new pull request gets (pure)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from instruct_lab_bot.core.messages.commands import help_text
from instruct_lab_bot.core.permissions import Policy

#: Hidden in the comment, so a welcome is never posted twice (even after Redis was wiped).
WELCOME_MARKER = "<!-- instruct-lab-bot:welcome -->"


def welcome(
    username: str,
    author: str,
    policy: Policy,
    labels: Sequence[str] = (),
    text: str | None = None,
    enabled: Collection[str] | None = None,
) -> str:
    """`text` is the repository's own greeting (its configuration file); the list of the
    commands it enabled always follows."""
    greeting = (
        f"👋 Thanks for the contribution, @{author}! I can test the seed examples in this PR."
        if text is None
        else text.replace(WELCOME_MARKER, "").strip()
    )
    return (
        f"{WELCOME_MARKER}\n{greeting}\n\nComment one of these commands at the start of a "
        "line:\n\n" + help_text(username, policy, labels, enabled)
    )

"""What `ilab model chat -qq` printed, as plain text (pure).

0.26 draws a rich panel around the answer unless `--no-decoration` is given (title: the
model id; subtitle: "elapsed N seconds"), and either version may print ANSI colour codes. A
reviewer wants the words only, so the panel's borders and the codes are removed; the title is
kept as the name of the model that answered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from instruct_lab_bot.core.progress import ANSI

_TOP = re.compile(r"^\s*[╭┌+][─━-]*\s*(?P<title>.*?)\s*[─━-]*[╮┐+]\s*$")
_BOTTOM = re.compile(r"^\s*[╰└+][─━-]*.*[╯┘+]\s*$")
_SIDE = re.compile(r"^\s*[│┃|] ?(?P<body>.*?)\s*[│┃|]\s*$")


@dataclass(frozen=True)
class ChatText:
    text: str
    model: str = ""


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def plain_chat(output: str) -> ChatText:
    """The answer without ANSI codes and without 0.26's panel, and the panel's model title."""
    lines = strip_ansi(output).replace("\r", "").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if len(lines) < 2 or not _TOP.match(lines[0]) or not _BOTTOM.match(lines[-1]):
        return ChatText("\n".join(lines).strip())
    top = _TOP.match(lines[0])
    title = top.group("title") if top else ""
    body = []
    for line in lines[1:-1]:
        side = _SIDE.match(line)
        body.append(side.group("body") if side else line.strip())
    return ChatText("\n".join(body).strip(), title)

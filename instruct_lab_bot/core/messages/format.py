"""Formatting every message shares: Markdown escaping of outside text, table cells, code
blocks, GitHub's size limits, durations and shas."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

CHECK_OUTPUT_LIMIT = 65_535  # GitHub's cap on check-run output.summary and output.text


COMMENT_LIMIT = 65_536  # GitHub's cap on an issue comment body


PREVIEW_CELL = 300


CHECK_NAME_PREFIX = "instruct-lab-bot/"


def check_name(command: str) -> str:
    return CHECK_NAME_PREFIX + command


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def escape_md(text: str) -> str:
    """Inline-safe Markdown: special characters escaped, mentions defused."""
    text = _MD_SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")


def table_cell(text: str, limit: int = PREVIEW_CELL) -> str:
    """One table cell: escaped, newlines as `<br>`, cut to `limit` characters of source text."""
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return escape_md(text).replace("\r\n", "\n").replace("\n", "<br>")


def code_block(lines: Sequence[str], limit: int) -> str:
    """A fenced block that no backtick run inside can close; keeps the newest lines that fit."""
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    kept: list[str] = []
    size = 2 * len(fence) + 2
    for line in reversed(lines):
        size += len(line) + 1
        if size > limit:
            break
        kept.append(line)
    kept.reverse()
    return f"{fence}\n" + "\n".join(kept) + f"\n{fence}"


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = "\n\n… (cut to fit GitHub's size limit)"
    return text[: limit - len(marker)] + marker


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_sha(sha: str) -> str:
    return sha[:7]


def format_size(size: int) -> str:
    """Bytes for people: `512 B`, `1.5 MB`, `13.2 GB`."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"

"""Problems as GitHub wants them: check-run annotations in batches of 50, and a Markdown summary
that names every checked file, all within GitHub's size limits."""

import itertools
from collections.abc import Iterable, Sequence
from typing import TypeVar

from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.validation.limits import (
    ANNOTATION_MESSAGE_BYTES,
    ANNOTATION_TITLE_CHARS,
    ANNOTATIONS_PER_REQUEST,
    SUMMARY_CHARS,
)
from instruct_lab_bot.core.validation.problem import Problem

T = TypeVar("T")


def annotations(problems: Sequence[Problem]) -> list[dict[str, object]]:
    """GitHub check-run annotations (`output.annotations` items), within GitHub's limits."""
    return [
        {
            "path": p.path,
            "start_line": max(1, p.line),
            "end_line": max(1, p.line, p.end_line),
            "annotation_level": p.level,
            "message": wording.shorten_bytes(p.message or p.title, ANNOTATION_MESSAGE_BYTES),
            "title": wording.shorten(p.title, ANNOTATION_TITLE_CHARS),
        }
        for p in problems
    ]


def batches(items: Sequence[T], size: int = ANNOTATIONS_PER_REQUEST) -> list[list[T]]:
    """`items` in chunks of `size` (GitHub takes at most 50 annotations per request)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def failed(problems: Iterable[Problem]) -> bool:
    """Whether the problems block GPU commands (any failure; warnings and notices do not)."""
    return any(p.level == "failure" for p in problems)


def summary(problems: Sequence[Problem], *, checked: Sequence[str] = ()) -> tuple[str, str]:
    """(check-run output title, Markdown summary) for all checked files.

    `checked` lists every validated path so files without problems are named too. Everything
    from the PR (paths, titles, messages) is escaped; the summary stays within GitHub's limit.
    """
    counts = {level: sum(p.level == level for p in problems) for level in wording.LEVEL_LABELS}
    failing = len({p.path for p in problems if p.level == "failure"})
    title = wording.summary_title(counts["failure"], counts["warning"], counts["notice"], failing)
    all_files = sorted(set(checked) | {p.path for p in problems})
    if not all_files:
        return title, wording.SUMMARY_NO_FILES
    lines = [wording.summary_head(title, len(all_files))]
    if counts["failure"]:
        lines.append(f"\n{wording.SUMMARY_BLOCKS}")
    with_problems = {p.path for p in problems}
    lines += [wording.summary_clean(path) for path in all_files if path not in with_problems]
    shown = _add_tables(lines, problems)
    if shown < len(problems):
        lines.append(wording.summary_more(len(problems) - shown))
    return title, wording.shorten("\n".join(lines), SUMMARY_CHARS)


def _add_tables(lines: list[str], problems: Sequence[Problem]) -> int:
    """Appends a table per file while the summary fits; returns how many problems it shows."""
    size = sum(len(line) + 1 for line in lines)
    limit = SUMMARY_CHARS - 200  # room for the "and N more" line
    shown = 0
    ordered = sorted(problems, key=lambda p: (p.path, p.line))
    for path, group in itertools.groupby(ordered, key=lambda p: p.path):
        header = wording.summary_file(path)
        if size + len(header) > limit:
            break
        lines.append(header)
        size += len(header) + 1
        for p in group:
            row = wording.summary_row(p.line, p.level, p.title, p.message)
            if size + len(row) > limit:
                break
            lines.append(row)
            size += len(row) + 1
            shown += 1
    return shown

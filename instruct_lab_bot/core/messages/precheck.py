"""Precheck texts: the model's answer next to the contributor's, per seed question (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from instruct_lab_bot.core.messages.format import escape_md, table_cell
from instruct_lab_bot.core.precheck import Answer


def precheck_about(answers: Sequence[Answer]) -> list[str]:
    """Which model answered, and whether it saw the seeds' context."""
    models = sorted({a.model for a in answers if a.model})
    if not answers:
        return []
    who = (
        "Answers from " + ", ".join(f"`{m.replace('`', '')[:200]}`" for m in models)
        if models
        else "Answers from the configured model"
    )
    context = (
        "some questions were sent with their seed's context"
        if any(a.with_context for a in answers)
        else "each question asked alone, without its seed's context"
    )
    return ["", f"{who} ({context})."]


def precheck_tables(answers: Sequence[Answer], limit: int = 40_000) -> list[str]:
    """Per file: question | contributor's answer | model's answer, one row per question,
    cut to fit a comment."""
    lines: list[str] = precheck_about(answers)
    size = 0
    for path in dict.fromkeys(a.path for a in answers):
        lines += [
            "",
            f"**`{escape_md(path)}`**",
            "",
            "| Question | Contributor's answer | Model's answer |",
            "|---|---|---|",
        ]
        for answer in (a for a in answers if a.path == path):
            model = table_cell(answer.answer) if answer.answer else f"⚠️ {table_cell(answer.error)}"
            row = f"| {table_cell(answer.question)} | {table_cell(answer.expected)} | {model} |"
            size += len(row)
            if size > limit:
                lines.append("| … | (more in the files below) | |")
                return lines
            lines.append(row)
    return lines


def precheck_title(answers: Sequence[Answer]) -> str:
    """The check-run title of a finished precheck."""
    answered = sum(1 for a in answers if a.answer)
    return f"Answered {answered} of {len(answers)} seed questions"


PRECHECK_CANCELLED = "cancelled"


def not_asked(deadline: float) -> str:
    """A seed question precheck stopped or never started: its overall deadline passed."""
    return f"not asked: precheck stops after {deadline:,.0f} s (ILAB_BOT_PRECHECK_DEADLINE)"

"""The parts of a generate result a reviewer acts on (pure): what ran (ilab version, teacher,
pipeline, duration, the exact command), counts per leaf and per file, the change since the
previous run on the PR, and a preview spread over the seed examples."""

from __future__ import annotations

from collections.abc import Sequence

from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.format import code_block, escape_md, format_duration, table_cell
from instruct_lab_bot.core.output_preview import Count, Sample
from instruct_lab_bot.core.run_compare import SampleChange

PREVIEW_SAMPLES = 5
#: Rows of the per-file table shown before the rest is left to the file index.
FILE_ROWS = 40


def run_facts(job: Job, duration: float) -> str:
    """One line with whichever facts the job recorded: ilab version, teacher, pipeline."""
    facts = []
    if job.ilab_version:
        facts.append(f"ilab {escape_md(job.ilab_version)}")
    if job.teacher_model:
        facts.append(f"teacher model {_code(job.teacher_model)}")
    if job.pipeline:
        facts.append(f"pipeline {_code(job.pipeline)}")
    if duration > 0:
        facts.append(f"took {format_duration(duration)}")
    return "**Run:** " + " · ".join(facts) if facts else ""


def _code(text: str) -> str:
    """Inline code, or escaped text when a backtick inside could close the code span."""
    text = text.replace("\n", " ")
    return escape_md(text) if "`" in text else f"`{text}`"


def counts_line(generated: int, discarded: int | None, change: SampleChange | None) -> str:
    line = f"**{generated}** samples generated"
    if discarded is not None:
        line += f", **{discarded}** discarded"
    if change is not None:
        line += (
            f" (compared with the previous run on this PR, job `{escape_md(change.previous_id)}`"
            f" on {change.previous_sha[:7]}: +{change.added}/−{change.removed} samples)"
        )
    return line + "."


def leaf_table(per_leaf: Sequence[Count]) -> list[str]:
    if not per_leaf:
        return []
    lines = ["", "| Taxonomy leaf | Samples |", "|---|---:|"]
    lines += [f"| {table_cell(c.name)} | {c.samples} |" for c in per_leaf]
    return lines


def preview_table(samples: Sequence[Sample]) -> list[str]:
    shown = list(samples[:PREVIEW_SAMPLES])
    if not shown:
        return []
    with_seed = any(s.seed_question for s in shown)
    heading = f"**Preview** ({len(shown)} samples, spread over the seed examples)"
    lines = ["", heading if with_seed else f"**Preview** ({len(shown)} samples)", ""]
    if with_seed:
        lines += ["| # | Seed question | Generated question | Answer |", "|---|---|---|---|"]
    else:
        lines += ["| # | Question | Answer |", "|---|---|---|"]
    for number, sample in enumerate(shown, 1):
        seed = f" {table_cell(sample.seed_question)} |" if with_seed else ""
        lines.append(
            f"| {number} |{seed} {table_cell(sample.question)} | {table_cell(sample.answer)} |"
        )
    return lines


def file_table(per_file: Sequence[Count]) -> list[str]:
    if not per_file:
        return []
    lines = ["", "<details><summary>Samples per file</summary>", ""]
    lines += ["| File | Records |", "|---|---:|"]
    lines += [f"| {table_cell(c.name)} | {c.samples} |" for c in per_file[:FILE_ROWS]]
    if len(per_file) > FILE_ROWS:
        lines.append(f"| … {len(per_file) - FILE_ROWS} more (see the files below) | |")
    return [*lines, "", "</details>"]


def command_block(command_line: str) -> list[str]:
    """The exact (redacted) command ilab ran, as written at the top of `ilab.log`."""
    if not command_line:
        return []
    return [
        "",
        "<details><summary>Command</summary>",
        "",
        code_block([command_line], 4000),
        "",
        "</details>",
    ]

"""Texts about jobs: their check runs from queued to completed, and the result comment (pure).

Anything a job produced (samples, log lines, file names) is escaped before it reaches Markdown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from instruct_lab_bot.core.jobs import CONCLUSIONS, Job, State
from instruct_lab_bot.core.messages.format import (
    CHECK_OUTPUT_LIMIT,
    COMMENT_LIMIT,
    check_name,
    code_block,
    cut,
    escape_md,
    format_duration,
    format_size,
    iso_now,
    short_sha,
    table_cell,
)
from instruct_lab_bot.core.messages.generate_result import (
    PREVIEW_SAMPLES as PREVIEW_SAMPLES,
)
from instruct_lab_bot.core.messages.generate_result import (
    command_block,
    counts_line,
    file_table,
    leaf_table,
    preview_table,
    run_facts,
)
from instruct_lab_bot.core.messages.model_test import comparison_tables, comparison_title
from instruct_lab_bot.core.messages.precheck import precheck_tables, precheck_title
from instruct_lab_bot.core.messages.train import TrainSummary, train_details, train_title
from instruct_lab_bot.core.model_test import ModelTestReport
from instruct_lab_bot.core.output_preview import Count, Sample
from instruct_lab_bot.core.precheck import Answer
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.run_compare import SampleChange

FAILURE_LOG_LINES = 50


@dataclass(frozen=True)
class Artifact:
    name: str
    url: str
    size: int
    view_url: str = ""  # the bot's browser viewer, for jsonl/yaml files


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced; built by the worker, rendered here."""

    state: State
    duration: float
    exit_code: int | None = None
    error: str = ""
    generated: int | None = None
    discarded: int | None = None
    samples: Sequence[Sample] = ()
    per_leaf: Sequence[Count] = ()
    per_file: Sequence[Count] = ()
    artifacts: Sequence[Artifact] = ()
    index_url: str = ""
    log_tail: Sequence[str] = field(default_factory=tuple)
    cancelled_by: str = ""
    precheck: Sequence[Answer] = ()
    model_test: ModelTestReport | None = None  # `test`: both models' answers, scored
    change: SampleChange | None = None  # against the PR's previous successful generate
    command_line: str = ""  # the redacted command ilab ran (the first line of ilab.log)
    # Set when something outside the contributor's change ended the job (a key of
    # INFRASTRUCTURE_CAUSES), with the status page to watch: the reply then says so.
    infrastructure: str = ""
    status_url: str = ""
    train: TrainSummary | None = None  # the model a successful train job stashed


#: What failed, when it was not the contributor's change (worded for the contributor).
INFRASTRUCTURE_CAUSES = {
    "ilab_crashed": "`ilab` crashed or was killed (for instance the machine ran out of memory)",
    "storage": "the bot could not store the job's files",
    "github": "the bot could not reach GitHub",
    "worker": "the workers running this job kept failing",
}


def not_your_fault(cause: str, status_url: str = "", *, retried: bool = False) -> str:
    """One paragraph for a failure the contributor did not cause, kept apart from the
    wording of their own mistakes."""
    what = INFRASTRUCTURE_CAUSES.get(cause, "the bot's infrastructure failed")
    then = (
        "it will be retried automatically."
        if retried
        else "an admin has been notified; comment `retry` once it is fixed."
    )
    status = f" [Status page]({status_url})" if status_url else ""
    return f"🛠️ **Not your fault:** {what}; {then}{status}"


def check_run_queued(job: Job, *, details_url: str | None = None) -> dict[str, object]:
    payload: dict[str, object] = {
        "name": check_name(job.command),
        "head_sha": job.head_sha,
        "status": "queued",
        "external_id": job.id,
        "output": {
            "title": "Queued",
            "summary": (
                f"`{job.command}` requested by @{job.requester} for "
                f"{short_sha(job.head_sha)}. Waiting for a worker (job `{job.id}`)."
            ),
        },
    }
    if details_url:
        payload["details_url"] = details_url
    return payload


def check_run_started(job: Job) -> dict[str, object]:
    return {
        "status": "in_progress",
        "started_at": iso_now(),
        "output": {
            "title": "Running",
            "summary": (
                f"Worker `{job.worker}` is running `{job.command}` (attempt {job.attempts})."
            ),
        },
    }


def check_run_handed_back(job: Job) -> dict[str, object]:
    return {
        "status": "queued",
        "output": {
            "title": "Waiting for another worker",
            "summary": f"Worker `{job.worker}` shut down; the job was handed back to the queue. "
            "Not your fault: it will be retried automatically.",
        },
    }


def progress_title(progress: Progress) -> str:
    title = progress.stage or "Running"
    if progress.percent is not None:
        title += f": {progress.percent}%"
        if progress.counter:
            title += f" ({progress.counter})"
    if progress.eta:
        title += f", ETA {progress.eta}"
    return title[:255]


def check_run_progress(job: Job, progress: Progress) -> dict[str, object]:
    """What the check run shows while the job runs: a function of the job and its output
    only (no clock: GitHub shows the run's elapsed time from `started_at` itself), so an
    update that would show the same is recognised and not sent (issue 17)."""
    summary = [
        f"Running `{job.command}` on {short_sha(job.head_sha)}.",
        "",
        f"- **Stage:** {escape_md(progress.stage)}",
    ]
    if progress.percent is not None:
        summary.append(f"- **Progress:** {progress.percent}% ({escape_md(progress.counter or '')})")
    if progress.eta:
        summary.append(f"- **ETA for this stage:** {escape_md(progress.eta)}")
    if progress.last_message:
        summary.append(f"- **Last message:** {escape_md(progress.last_message)}")
    return {
        "status": "in_progress",
        "output": {
            "title": progress_title(progress),
            "summary": cut("\n".join(summary), CHECK_OUTPUT_LIMIT),
            "text": log_text(progress.last_lines(progress.tail_lines)),
        },
    }


def log_text(lines: Sequence[str]) -> str:
    return "### Log (newest lines)\n\n" + code_block(lines, CHECK_OUTPUT_LIMIT - 100)


def check_run_completed(job: Job, result: JobResult) -> dict[str, object]:
    conclusion = CONCLUSIONS[result.state]
    output: dict[str, object] = {
        "title": completed_title(job, result),
        "summary": cut(result_summary(job, result), CHECK_OUTPUT_LIMIT),
        "text": log_text(list(result.log_tail)),
    }
    if result.train and result.train.loss_curve_url:
        output["images"] = [{"alt": "Training loss", "image_url": result.train.loss_curve_url}]
    return {
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": iso_now(),
        "output": output,
    }


def completed_title(job: Job, result: JobResult) -> str:
    if result.state is State.SUCCEEDED:
        if result.precheck:
            return precheck_title(result.precheck)
        if result.train:
            return train_title(result.train, result.duration)
        if result.model_test is not None:
            return comparison_title(result.model_test)
        if result.generated is not None:
            return f"Generated {result.generated} samples in {format_duration(result.duration)}"
        return f"Finished in {format_duration(result.duration)}"
    if result.state is State.TIMED_OUT:
        return f"Timed out after {format_duration(result.duration)}"
    if result.state is State.CANCELLED:
        return "Cancelled" + (f" by @{result.cancelled_by}" if result.cancelled_by else "")
    if result.error:
        return f"`{job.command}` failed: {result.error}"[:255]
    return f"`{job.command}` failed"


def result_marker(job_id: str, round_: int = 0) -> str:
    """Hidden in a job's result comment: how a retried post finds one that already went out.
    `round_` counts requeues from the dead letters: each round's result is its own comment."""
    suffix = f":r{round_}" if round_ else ""
    return f"<!-- instruct-lab-bot:result:{job_id}{suffix} -->"


def result_comment(job: Job, result: JobResult) -> str:
    """The one comment a finished job posts on its PR (its hidden marker last)."""
    marker = "\n\n" + result_marker(job.id, job.requeued)
    body = cut(result_summary(job, result, for_comment=True), COMMENT_LIMIT - len(marker))
    return body + marker


def result_summary(job: Job, result: JobResult, *, for_comment: bool = False) -> str:
    icon = {State.SUCCEEDED: "✅", State.TIMED_OUT: "⏱️", State.CANCELLED: "🛑"}.get(
        result.state, "❌"
    )
    lines = [
        f"### {icon} `{job.command}` {_verdict(result.state)}" if for_comment else "",
        "",
        f"Ran {_what_ran(job.command)} on {job.head_sha} (requested by @{job.requester}) "
        f"in {format_duration(result.duration)}. Job `{job.id}`.",
    ]
    if facts := run_facts(job, result.duration):
        lines += ["", facts]
    if result.precheck:
        lines += precheck_tables(result.precheck)
    if result.model_test is not None:
        lines += comparison_tables(result.model_test)
    if result.state is State.SUCCEEDED:
        lines += _success_details(result)
    else:
        lines += _failure_details(job, result, for_comment=for_comment)
    lines += command_block(result.command_line or job.command_line)
    if result.artifacts:
        lines += ["", "**Files**" + (f" ([index]({result.index_url}))" if result.index_url else "")]
        lines += [_artifact_line(a) for a in result.artifacts]
    return "\n".join(lines).strip() + "\n"


def _artifact_line(artifact: Artifact) -> str:
    line = f"- [{escape_md(artifact.name)}]({artifact.url}) ({format_size(artifact.size)})"
    return line + (f" · [view]({artifact.view_url})" if artifact.view_url else "")


def _what_ran(command: str) -> str:
    return {
        "generate": "`ilab data generate`",
        "precheck": "`ilab model chat` on each seed question",
        "train": "`ilab model train`",
        "test": "the base and the trained model (`ilab model serve`) on each seed question",
    }.get(command, f"`{command}`")


def _verdict(state: State) -> str:
    return {
        State.SUCCEEDED: "succeeded",
        State.FAILED: "failed",
        State.TIMED_OUT: "timed out",
        State.CANCELLED: "was cancelled",
        State.DEAD: "gave up",
        State.SUPERSEDED: "was superseded",
    }.get(state, str(state))


def _success_details(result: JobResult) -> list[str]:
    lines: list[str] = []
    if result.generated is not None:
        lines += ["", counts_line(result.generated, result.discarded, result.change)]
    if result.train:
        lines += train_details(result.train)
    lines += leaf_table(result.per_leaf)
    lines += preview_table(result.samples)
    lines += file_table(result.per_file)
    return lines


def _failure_details(job: Job, result: JobResult, *, for_comment: bool) -> list[str]:
    lines: list[str] = []
    if result.state is State.TIMED_OUT:
        lines += ["", "The job ran past its time limit and was stopped."]
    if result.cancelled_by:
        lines += ["", f"Cancelled by @{result.cancelled_by}."]
    if result.error:
        lines += ["", "**Error:** " + table_cell(result.error, 2000).replace("<br>", " ")]
    if result.exit_code is not None and result.state is State.FAILED:
        lines += ["", f"`ilab` exited with code {result.exit_code}."]
    if result.infrastructure:
        lines += ["", not_your_fault(result.infrastructure, result.status_url)]
    if for_comment and result.log_tail:
        tail = list(result.log_tail)[-FAILURE_LOG_LINES:]
        lines += [
            "",
            "<details><summary>Last log lines</summary>",
            "",
            code_block(tail, 40_000),
            "",
            "</details>",
        ]
    return lines


def superseded(job: Job, new_sha: str) -> dict[str, object]:
    """Check-run completion for a queued job whose PR got a new push."""
    return {
        "status": "completed",
        "conclusion": "cancelled",
        "completed_at": iso_now(),
        "output": {
            "title": "Superseded by a new push",
            "summary": (
                f"{short_sha(job.head_sha)} was replaced by {short_sha(new_sha)} before this "
                f"job started; comment `{job.command}` again to run it on the new head."
            ),
        },
    }


def cancelled_check_run(job: Job, login: str, reason: str = "") -> dict[str, object]:
    return {
        "status": "completed",
        "conclusion": "cancelled",
        "completed_at": iso_now(),
        "output": {
            "title": f"Cancelled by @{login}" if login else "Cancelled",
            "summary": reason or f"`{job.command}` was cancelled before it finished.",
        },
    }


def dead_letter(job: Job, attempts: int) -> str:
    return (
        f"`{job.command}` on {short_sha(job.head_sha)} stopped after {attempts} attempts: the "
        "worker running it kept failing. An admin can retry it with "
        f"`instruct-lab-bot dlq requeue` (job `{job.id}`)."
    )


def job_error(message: str) -> str:
    """An error told to the contributor before a job could run (bad input, missing PR...)."""
    return f"⚠️ {message}"

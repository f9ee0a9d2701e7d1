"""Every text a contributor, reviewer or admin reads, and every check-run payload (pure).

One place, so wording, escaping and GitHub's size limits are handled once. Anything that came
from outside (seed text, generated samples, log lines, file names) is escaped here before it is
put into Markdown: no injected HTML, tables, links or @mentions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from instruct_lab_bot.core.jobs import CONCLUSIONS, Job, State
from instruct_lab_bot.core.messages.format import (
    CHECK_NAME_PREFIX,
    CHECK_OUTPUT_LIMIT,
    COMMENT_LIMIT,
    PREVIEW_CELL,
    check_name,
    code_block,
    cut,
    escape_md,
    format_duration,
    iso_now,
    short_sha,
    table_cell,
)
from instruct_lab_bot.core.permissions import Policy
from instruct_lab_bot.core.precheck import Answer
from instruct_lab_bot.core.progress import Progress

__all__ = [
    "CHECK_NAME_PREFIX",
    "CHECK_OUTPUT_LIMIT",
    "COMMENT_LIMIT",
    "PREVIEW_CELL",
    "check_name",
    "code_block",
    "cut",
    "escape_md",
    "format_duration",
    "iso_now",
    "short_sha",
    "table_cell",
]

if TYPE_CHECKING:
    from instruct_lab_bot.core.job_view import PrStatus

PREVIEW_SAMPLES = 5
FAILURE_LOG_LINES = 50


@dataclass(frozen=True)
class Artifact:
    name: str
    url: str
    size: int


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced; built by the worker, rendered here."""

    state: State
    duration: float
    exit_code: int | None = None
    error: str = ""
    generated: int | None = None
    discarded: int | None = None
    samples: Sequence[tuple[str, str]] = ()
    artifacts: Sequence[Artifact] = ()
    index_url: str = ""
    log_tail: Sequence[str] = field(default_factory=tuple)
    cancelled_by: str = ""
    precheck: Sequence[Answer] = ()


# -- escaping -------------------------------------------------------------------------


# -- check runs -----------------------------------------------------------------------


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
            "summary": f"Worker `{job.worker}` shut down; the job was handed back to the queue.",
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
    summary = [
        f"Running `{job.command}` on {short_sha(job.head_sha)} "
        f"for {format_duration(job.duration)}.",
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
    return {
        "status": "completed",
        "conclusion": conclusion,
        "completed_at": iso_now(),
        "output": {
            "title": completed_title(job, result),
            "summary": cut(result_summary(job, result), CHECK_OUTPUT_LIMIT),
            "text": log_text(list(result.log_tail)),
        },
    }


def completed_title(job: Job, result: JobResult) -> str:
    if result.state is State.SUCCEEDED:
        if result.precheck:
            answered = sum(1 for a in result.precheck if a.answer)
            return f"Answered {answered} of {len(result.precheck)} seed questions"
        if result.generated is not None:
            return f"Generated {result.generated} samples in {format_duration(result.duration)}"
        return f"Finished in {format_duration(result.duration)}"
    if result.state is State.TIMED_OUT:
        return f"Timed out after {format_duration(result.duration)}"
    if result.state is State.CANCELLED:
        return "Cancelled" + (f" by @{result.cancelled_by}" if result.cancelled_by else "")
    return f"`{job.command}` failed"


# -- PR comments ----------------------------------------------------------------------


def result_comment(job: Job, result: JobResult) -> str:
    """The one comment a finished job posts on its PR."""
    return cut(result_summary(job, result, for_comment=True), COMMENT_LIMIT)


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
    if result.precheck:
        lines += precheck_tables(result.precheck)
    if result.state is State.SUCCEEDED:
        lines += _success_details(result)
    else:
        lines += _failure_details(job, result, for_comment=for_comment)
    if result.artifacts:
        lines += ["", "**Files**" + (f" ([index]({result.index_url}))" if result.index_url else "")]
        lines += [f"- [{escape_md(a.name)}]({a.url}) ({_size(a.size)})" for a in result.artifacts]
    return "\n".join(lines).strip() + "\n"


def _what_ran(command: str) -> str:
    return {
        "generate": "`ilab data generate`",
        "precheck": "`ilab model chat` on each seed question",
    }.get(command, f"`{command}`")


def precheck_tables(answers: Sequence[Answer], limit: int = 40_000) -> list[str]:
    """Per file: question | contributor's answer | model's answer, cut to fit a comment."""
    lines: list[str] = []
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


def labels_check_run(command: str, head_sha: str, labels: Sequence[str]) -> dict[str, object]:
    """A failed check run saying which labels a GPU command needs."""
    return {
        "name": check_name(command),
        "head_sha": head_sha,
        "status": "completed",
        "conclusion": "action_required",
        "completed_at": iso_now(),
        "details_url": "https://docs.github.com/en/issues/using-labels-and-milestones-to-track-work",
        "output": {"title": "A label is needed", "summary": labels_needed(command, labels)},
    }


def status_reply(pr: PrStatus, page_url: str) -> str:
    """The `status` command's answer: the same read model as the status page, as a table."""
    if not pr.jobs:
        return f"No jobs have run on this pull request yet. ([status page]({page_url}))"
    lines = ["| job | command | sha | state | details |", "|---|---|---|---|---|"]
    for job in pr.jobs[:30]:
        if job.state is State.QUEUED:
            details = f"position {job.position} in the queue" if job.position else "waiting"
        elif job.state is State.RUNNING:
            details = f"on `{escape_md(job.worker)}` for {format_duration(job.duration or 0)}"
            if job.stage:
                details += f": {escape_md(job.stage)}"
        else:
            details = f"took {format_duration(job.duration or 0)}"
            if job.generated is not None and job.generated >= 0:
                details += f", {job.generated} samples"
            if job.links.artifacts:
                details += f", [files]({job.links.artifacts})"
        name = f"`{job.id[:8]}`"
        run = f"[{name}]({job.links.check_run})" if job.links.check_run else name
        lines.append(
            f"| {run} | `{job.command}` | {short_sha(job.head_sha)} | {job.state} | {details} |"
        )
    return "\n".join(lines) + f"\n\nLive view: [status page]({page_url})."


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
        counts = f"**{result.generated}** samples generated"
        if result.discarded is not None:
            counts += f", **{result.discarded}** discarded"
        lines += ["", counts + "."]
    if result.samples:
        lines += [
            "",
            f"**Preview** (first {min(len(result.samples), PREVIEW_SAMPLES)})",
            "",
            "| # | Question | Answer |",
            "|---|---|---|",
        ]
        for number, (question, answer) in enumerate(result.samples[:PREVIEW_SAMPLES], 1):
            lines.append(f"| {number} | {table_cell(question)} | {table_cell(answer)} |")
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


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


COMMAND_HELP: dict[str, str] = {
    "help": "show this list",
    "generate": "run `ilab data generate` on this PR's head and post the synthetic data",
    "precheck": "ask the current model each seed question and compare with your answers",
    "status": "list this PR's jobs: queued, running and finished, with links",
    "retry": "re-run the last failed, cancelled or timed-out job on the current head",
    "cancel": "cancel this PR's queued and running jobs",
}
WELCOME_MARKER = "<!-- instruct-lab-bot:welcome -->"


def who_may(policy: Policy) -> str:
    """Who may run the restricted commands, in words."""
    ways: list[str] = []
    if policy.role_rule:
        ways.append(f"people with at least **{policy.min_permission}** access to this repository")
    if policy.allowed_teams:
        teams = ", ".join(f"`{escape_md(t)}`" for t in policy.allowed_teams)
        ways.append(f"members of {teams}")
    return " or ".join(ways) if ways else "nobody (the bot's admins have not allowed anyone yet)"


def help_text(username: str, policy: Policy, required_labels: Sequence[str] = ()) -> str:
    lines = ["| command | what it does | who may run it |", "|---|---|---|"]
    for command, what in COMMAND_HELP.items():
        who = "restricted" if policy.restricted(command) else "anyone"
        lines.append(f"| `@{username} {command}` | {what} | {who} |")
    text = "\n".join(lines) + f"\n\nRestricted commands may be run by {who_may(policy)}."
    if required_labels:
        labels = ", ".join(f"`{escape_md(label)}`" for label in required_labels)
        text += f" `generate` and `precheck` need one of these labels on the PR: {labels}."
    return text


def welcome(username: str, author: str, policy: Policy, labels: Sequence[str] = ()) -> str:
    return (
        f"{WELCOME_MARKER}\n👋 Thanks for the contribution, @{author}! I can test the seed "
        "examples in this PR. Comment one of these commands at the start of a line:\n\n"
        + help_text(username, policy, labels)
    )


def unknown_command(username: str, name: str, suggestion: str | None) -> str:
    text = f"I don't know the command `{escape_md(name[:50])}`."
    if suggestion:
        text += f" Did you mean `@{username} {suggestion}`?"
    known = ", ".join(f"`{c}`" for c in COMMAND_HELP)
    return text + f" I understand: {known} (`@{username} help` explains them)."


def denied(command: str, login: str, policy: Policy) -> str:
    return (
        f"Sorry @{escape_md(login)}, `{command}` may only be run by {who_may(policy)}. "
        "A maintainer can run it for you."
    )


def labels_needed(command: str, labels: Sequence[str]) -> str:
    wanted = ", ".join(f"`{escape_md(label)}`" for label in labels)
    return f"`{command}` needs one of these labels on the PR first: {wanted}."


def not_a_pull_request(username: str) -> str:
    return f"`@{username}` commands work on pull requests only; nothing was run."


def pull_request_closed(command: str) -> str:
    return f"This pull request is closed, so `{command}` was not run."


def no_taxonomy_change(command: str) -> str:
    return (
        f"This pull request changes no `qna.yaml` file, so there is nothing for `{command}` "
        "to work on."
    )


def validation_failed(command: str, url: str, problems: int) -> str:
    return (
        f"`{command}` was not run: {problems} problem(s) in the changed taxonomy files. "
        f"See the [validation check run]({url}) for each one at its line, fix them and push."
    )


def too_many_commands(limit: int) -> str:
    return f"That comment holds more than {limit} commands; I took the first {limit}."


def cancelled(jobs: Sequence[Job], login: str) -> str:
    if not jobs:
        return "There is nothing queued or running on this PR to cancel."
    listed = ", ".join(f"`{j.command}` ({j.state}, job `{j.id}`)" for j in jobs)
    return f"🛑 Cancelled at the request of @{escape_md(login)}: {listed}."


def nothing_to_retry() -> str:
    return "There is no failed, cancelled or timed-out job on this PR to retry."


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


def check_run_url(web_url: str, job: Job) -> str:
    """Where GitHub shows a check run (`ILAB_BOT_GITHUB_GIT_URL` is the web host too)."""
    if not web_url.startswith(("http://", "https://")):
        web_url = "https://github.com"
    return f"{web_url}/{job.owner}/{job.repo}/runs/{job.check_run_id}"


def already_running(job: Job, url: str) -> str:
    """A second request for the same PR head and command: link the job in flight instead."""
    where = f"[check run]({url})" if job.check_run_id else f"job `{job.id}`"
    return (
        f"⏳ `{job.command}` for {short_sha(job.head_sha)} is already {job.state} "
        f"(requested by @{job.requester}): see the {where}. Nothing new was queued."
    )


def dead_letter(job: Job, attempts: int) -> str:
    return (
        f"`{job.command}` on {short_sha(job.head_sha)} stopped after {attempts} attempts: the "
        "worker running it kept failing. An admin can retry it with "
        f"`instruct-lab-bot dlq requeue` (job `{job.id}`)."
    )


def job_error(message: str) -> str:
    """An error told to the contributor before a job could run (bad input, missing PR...)."""
    return f"⚠️ {message}"


# -- status page (issue 5): short labels; the HTML lives in `web_status` -----------------

STATUS_TITLE = "instruct-lab-bot status"
STATUS_STATE_LABELS: dict[State, str] = {
    State.QUEUED: "queued",
    State.RUNNING: "running",
    State.SUCCEEDED: "succeeded",
    State.FAILED: "failed",
    State.TIMED_OUT: "timed out",
    State.CANCELLED: "cancelled",
    State.SUPERSEDED: "superseded",
    State.DEAD: "gave up",
}
STATUS_SECTIONS: dict[str, str] = {
    "queued": "Queue",
    "running": "Running",
    "finished": "Recently finished",
    "workers": "Workers",
    "builds": "Available builds",
    "jobs": "All jobs",
}
STATUS_EMPTY: dict[str, str] = {
    "queued": "Nothing is waiting.",
    "running": "No job is running.",
    "finished": "No job has finished recently.",
    "workers": "No worker is alive.",
    "builds": "No build of this pull request can be downloaded.",
    "jobs": "No job for this pull request.",
}
STATUS_UNAUTHORIZED = "This status page needs credentials."
STATUS_NOT_FOUND = "No such job (or it is not visible without credentials)."


def status_hidden(count: int) -> str:
    """Jobs of private repositories, counted for viewers who may not see them."""
    if count == 1:
        return "1 job of a private repository is not shown."
    return f"{count} jobs of private repositories are not shown."


def status_ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"


def status_pr_title(owner: str, repo: str, pr_number: int) -> str:
    return f"{owner}/{repo} #{pr_number}"

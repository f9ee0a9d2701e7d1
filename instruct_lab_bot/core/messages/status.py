"""Status texts: the `status` command's reply and the status page's short labels (pure).

The HTML lives in `services/status_page`; both read the same model (`PrStatus`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from instruct_lab_bot.core.jobs import State
from instruct_lab_bot.core.messages.format import escape_md, format_duration, short_sha
from instruct_lab_bot.core.refs import PullRequestRef

if TYPE_CHECKING:
    from instruct_lab_bot.core.job_view import PrStatus

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
    "pools": "Worker pools",
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
STATUS_NO_SUCH_PATH = "No such API endpoint (see docs/status-api.openapi.yaml)."
STATUS_WRONG_METHOD = "This API endpoint answers GET only."


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


def status_hidden(count: int) -> str:
    """Jobs of private repositories, counted for viewers who may not see them."""
    if count == 1:
        return "1 job of a private repository is not shown."
    return f"{count} jobs of private repositories are not shown."


def status_ago(seconds: float) -> str:
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"


def status_pr_title(pull: PullRequestRef) -> str:
    return f"{pull.repo.full_name} #{pull.number}"

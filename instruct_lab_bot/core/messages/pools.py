"""Worker pools: what a PR is told when its job waits for a pool no live worker serves (pure).

Each job kind is a capability, and workers declare theirs (`--capabilities`); a job queued for
a capability no live worker has waits (nothing is lost) and the reply and the queued check run
say so.
"""

from __future__ import annotations

from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.format import escape_md, short_sha


def no_worker(capability: str) -> str:
    """The one line, shared by the reply and the check run."""
    return f"queued; no worker can run `{escape_md(capability)}` right now"


def no_worker_reply(job: Job, capability: str, url: str) -> str:
    """The reply to a request whose job waits for a pool without a live worker."""
    where = f"[check run]({url})" if url else f"job `{job.id}`"
    return (
        f"⏳ `{job.command}` for {short_sha(job.head_sha)} is {no_worker(capability)}: it "
        f"starts as soon as a `{escape_md(capability)}` worker is up, which may take a few "
        f"minutes (see the {where}); if none comes, the bot's admins are alerted."
    )


def no_worker_check_run(payload: dict[str, object], capability: str) -> dict[str, object]:
    """The queued check run's payload, its title and summary saying no worker can run it."""
    output = dict(payload.get("output") or {})  # type: ignore[call-overload]
    summary = str(output.get("summary", ""))
    line = no_worker(capability)
    output["title"] = line[0].upper() + line[1:]
    output["summary"] = f"{line[0].upper() + line[1:]}.\n\n{summary}".strip()
    return {**payload, "output": output}

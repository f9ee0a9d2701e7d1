"""Texts about a job's files: the stable links' refusals and the `links` command's reply (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from instruct_lab_bot.core.messages.format import escape_md, short_sha

LINK_INVALID = "this link is invalid"
LINK_NO_JOB = "this job is no longer known to the bot (its record expired)"
LINK_NO_FILE = "this file is not stored (it may have been cleaned up)"
LINK_STORE_DOWN = "the artifact store cannot be reached right now; try again later"
LINKS_STORE_DOWN = "⚠️ The artifact store cannot be reached right now; ask again later."


def links_reply(
    job_id: str, command: str, head_sha: str, files: Sequence[tuple[str, str, str]]
) -> str:
    """The `links` command's answer: fresh links to one job's files, `(name, url, view_url)`."""
    lines = [
        f"Links to the files of `{command}` on {short_sha(head_sha)} (job `{job_id}`):",
        "",
    ]
    for name, url, view in files:
        line = f"- [{escape_md(name)}]({url})"
        lines.append(line + (f" · [view]({view})" if view else ""))
    if not files:
        lines.append("This job stored no files.")
    return "\n".join(lines)


def no_job_for_links(job_id: str) -> str:
    if job_id:
        return f"⚠️ There is no job `{escape_md(job_id)}` on this pull request."
    return "⚠️ No job on this pull request has stored files yet."

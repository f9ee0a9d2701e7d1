"""Replies to commands: help, refusals, denials, cancellations (pure).

The help table and the permission matrix are generated from the command table, so a new row
there shows up in `help`, in the welcome comment and in the README's matrix.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from instruct_lab_bot.core.command_table import COMMAND_TABLE, KNOWN_COMMANDS
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.messages.format import check_name, escape_md, iso_now, short_sha
from instruct_lab_bot.core.permissions import Facts, Policy, decide


def who_may(policy: Policy) -> str:
    """Who may run the restricted commands, in words."""
    ways: list[str] = []
    if policy.role_rule:
        ways.append(f"people with at least **{policy.min_permission}** access to this repository")
    if policy.allowed_teams:
        teams = ", ".join(f"`{escape_md(t)}`" for t in policy.allowed_teams)
        ways.append(f"members of {teams}")
    return " or ".join(ways) if ways else "nobody (the bot's admins have not allowed anyone yet)"


def help_text(
    username: str,
    policy: Policy,
    required_labels: Sequence[str] = (),
    enabled: Collection[str] | None = None,
) -> str:
    """The command table; `enabled` (a repository's configuration) leaves the others out."""
    lines = ["| command | what it does | who may run it |", "|---|---|---|"]
    for spec in COMMAND_TABLE:
        if enabled is not None and spec.name not in enabled:
            continue
        who = "restricted" if policy.restricted(spec.name) else "anyone"
        lines.append(f"| `@{username} {spec.name}` | {spec.help} | {who} |")
    text = "\n".join(lines) + f"\n\nRestricted commands may be run by {who_may(policy)}."
    needing = [f"`{s.name}`" for s in COMMAND_TABLE if s.needs_labels]
    if required_labels and needing:
        labels = ", ".join(f"`{escape_md(label)}`" for label in required_labels)
        text += f" {_and(needing)} need one of these labels on the PR: {labels}."
    return text


def _and(words: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def permission_matrix(policy: Policy, rows: Sequence[tuple[str, Sequence[Facts]]]) -> str:
    """Who may run what, as the README's table: one column per group of commands with the same
    rule, one row per group of people (who must all get the same answers)."""
    groups = [
        [s.name for s in COMMAND_TABLE if policy.restricted(s.name) is restricted]
        for restricted in (False, True)
    ]
    groups = [group for group in groups if group]
    lines = ["| who | " + " | ".join(", ".join(g) for g in groups) + " |"]
    lines.append("|---" * (len(groups) + 1) + "|")
    for who, people in rows:
        answers = {tuple(_verdict(policy, g[0], facts) for g in groups) for facts in people}
        if len(answers) != 1:
            raise ValueError(f"the people in row {who!r} do not all get the same answers")
        lines.append(f"| {who} | {' | '.join(answers.pop())} |")
    return "\n".join(lines)


def _verdict(policy: Policy, command: str, facts: Facts) -> str:
    decision = decide(policy, command, facts)
    if decision.reason == "bot":
        return "ignored"
    return "yes" if decision.allowed else "no (polite reply)"


def unknown_command(username: str, name: str, suggestion: str | None) -> str:
    text = f"I don't know the command `{escape_md(name[:50])}`."
    if suggestion:
        text += f" Did you mean `@{username} {suggestion}`?"
    known = ", ".join(f"`{c}`" for c in KNOWN_COMMANDS)
    return text + f" I understand: {known} (`@{username} help` explains them)."


def denied(command: str, login: str, policy: Policy) -> str:
    return (
        f"Sorry @{escape_md(login)}, `{command}` may only be run by {who_may(policy)}. "
        "A maintainer can run it for you."
    )


def labels_needed(command: str, labels: Sequence[str]) -> str:
    wanted = ", ".join(f"`{escape_md(label)}`" for label in labels)
    return f"`{command}` needs one of these labels on the PR first: {wanted}."


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


def former_name_note(username: str, former: Sequence[str]) -> str:
    """One line for a command addressed by the bot's old name (still obeyed, for now)."""
    old = " / ".join(f"`@{name}`" for name in former) or "that name"
    return (
        f"ℹ️ I am now `@{username}`: {old} still works for now but will stop; "
        "please use the new name."
    )


def cancelled(jobs: Sequence[Job], login: str) -> str:
    if not jobs:
        return "There is nothing queued or running on this PR to cancel."
    listed = ", ".join(f"`{j.command}` ({j.state}, job `{j.id}`)" for j in jobs)
    return f"🛑 Cancelled at the request of @{escape_md(login)}: {listed}."


def nothing_to_retry() -> str:
    return "There is no failed, cancelled or timed-out job on this PR to retry."


def already_running(job: Job, url: str) -> str:
    """A second request for the same PR head and command: link the job in flight instead."""
    where = f"[check run]({url})" if job.check_run_id else f"job `{job.id}`"
    return (
        f"⏳ `{job.command}` for {short_sha(job.head_sha)} is already {job.state} "
        f"(requested by @{job.requester}): see the {where}. Nothing new was queued."
    )


def already_succeeded(job: Job, url: str) -> str:
    """A request for a command that already succeeded on the PR's head: the same inputs give
    the same results, so link them instead of running it again."""
    where = f"[check run]({url})" if job.check_run_id else f"job `{job.id}`"
    return (
        f"✅ `{job.command}` already succeeded for {short_sha(job.head_sha)} "
        f"(requested by @{job.requester}): see the {where} for its results. Nothing new was "
        "queued: the check run's **Re-run** (or a new commit) runs it again."
    )

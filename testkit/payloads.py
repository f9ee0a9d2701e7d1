"""Real GitHub webhook examples turned into the deliveries the bot acts on.

Shared by the tests and `make demo`: both start from `@octokit/webhooks-examples` payloads and
change only what makes them a comment on our PR.
"""

from __future__ import annotations

import copy
from typing import Any


def pr_comment(
    example: dict[str, Any],
    *,
    body: str,
    owner: str = "instructlab",
    repo: str = "taxonomy",
    pr_number: int = 7,
    comment_id: int = 9001,
    login: str = "contributor",
    installation_id: int = 1,
) -> dict[str, Any]:
    """A real `issue_comment.created` example turned into a comment on a PR of ours."""
    payload = copy.deepcopy(example)
    payload["action"] = "created"
    issue = payload["issue"]
    issue["number"] = pr_number
    issue["pull_request"] = {
        "url": f"https://api.github.com/repos/{owner}/{repo}/pulls/{pr_number}",
        "html_url": f"https://github.com/{owner}/{repo}/pull/{pr_number}",
        "diff_url": f"https://github.com/{owner}/{repo}/pull/{pr_number}.diff",
        "patch_url": f"https://github.com/{owner}/{repo}/pull/{pr_number}.patch",
    }
    comment = payload["comment"]
    comment["id"] = comment_id
    comment["body"] = body
    comment["user"]["login"] = login
    comment["user"]["type"] = "User"
    payload["repository"]["name"] = repo
    payload["repository"]["full_name"] = f"{owner}/{repo}"
    payload["repository"]["owner"]["login"] = owner
    payload["installation"] = {
        "id": installation_id,
        "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ==",
    }
    return payload


def pr_pushed(
    example: dict[str, Any],
    *,
    head_sha: str,
    head_ref: str,
    owner: str = "instructlab",
    repo: str = "taxonomy",
    pr_number: int = 7,
    installation_id: int = 1,
) -> dict[str, Any]:
    """A real `pull_request.synchronize` example turned into a push of `head_sha` to our PR."""
    payload = copy.deepcopy(example)
    payload["action"] = "synchronize"
    payload["installation"] = {"id": installation_id}
    payload["repository"].update(name=repo, full_name=f"{owner}/{repo}")
    payload["repository"]["owner"]["login"] = owner
    pull = payload["pull_request"]
    pull.update(number=pr_number, state="open", labels=[])
    pull["head"].update(sha=head_sha, ref=head_ref)
    pull["base"]["ref"] = "main"
    pull["user"]["login"] = "contributor"
    return payload

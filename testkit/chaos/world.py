"""The chaos run's outside world: GitHub (the emulator) with one taxonomy PR per command, the
PRs' git remote, and one signed `generate` delivery per PR built from GitHub's own example."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instruct_lab_bot.core.messages import check_name
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.webhooks import sign

from ..github_emulator import GitHubEmulator
from ..payloads import pr_comment
from ..taxonomy import (
    TaxonomyRemote,
    add_pulls,
    build_taxonomy_remote,
    default_skill_seeds,
    file_at,
    leaf_files,
    skill_qna,
)
from ..testdata import TestDataPaths, load_webhook_example

OWNER, REPO = "instructlab", "taxonomy"
FIRST_PR = 100
REVIEWER = "reviewer"  # has write access: may run `generate`
SKILL_DIR = "compositional_skills/linguistics/synonyms/formal_register"
GENERATE_CHECK = check_name("generate")


@dataclass(frozen=True)
class Delivery:
    """One webhook as GitHub sends it (and re-sends it, with the same id, until it gets a 2xx)."""

    event: str
    delivery_id: str
    body: bytes
    signature: str
    pr_number: int = 0  # the PR a command is about; 0 for other events

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": self.event,
            "X-GitHub-Delivery": self.delivery_id,
            "X-Hub-Signature-256": self.signature,
        }


def signed(event: str, payload: dict[str, Any], secret: str, pr_number: int = 0) -> Delivery:
    body = json.dumps(payload).encode()
    return Delivery(event, str(uuid.uuid4()), body, sign(body, secret.encode()), pr_number)


def build_remote(var: Path) -> TaxonomyRemote:
    return build_taxonomy_remote(
        var / "git",
        OWNER,
        REPO,
        base_files={"README.md": "# Taxonomy\n"},
        pr_number=FIRST_PR,
        pr_files=leaf_files(SKILL_DIR, skill_qna(default_skill_seeds())),
        head_ref="formal-register",
    )


def publish_pulls(gh: GitHubEmulator, remote: TaxonomyRemote, count: int) -> dict[int, str]:
    """`count` open PRs on the emulator (the remote's first one and copies), each with its own
    head sha in git; {number: head sha}."""
    heads = {FIRST_PR: remote.head_sha}
    heads.update(add_pulls(remote, range(FIRST_PR + 1, FIRST_PR + count)))
    gh.add_repo(OWNER, REPO)
    gh.set_permission(OWNER, REPO, REVIEWER, "write")
    texts = {path: file_at(remote, remote.head_sha, path) for path in remote.changed_files}
    for number, sha in heads.items():
        gh.add_pull(
            OWNER,
            REPO,
            number,
            head_sha=sha,
            head_ref=f"{remote.head_ref}-{number}",
            base_sha=remote.base_sha,
            files=list(remote.changed_files),
            title=f"Add a skill ({number})",
            user_login="contributor",
        )
        for path, text in texts.items():
            gh.set_content(OWNER, REPO, path, text, ref=sha)
    return heads


def generate_commands(
    gh: GitHubEmulator, paths: TestDataPaths, numbers: list[int], secret: str
) -> list[Delivery]:
    """A reviewer's `@<bot> generate` comment on each PR (seeded on the emulator, so the 👀
    reaction has a comment to go to), as the signed `issue_comment` deliveries GitHub sends."""
    example = load_webhook_example(paths, "issue_comment", action="created")
    body = f"Looks ready.\n\n@{Settings().username} generate"
    deliveries = []
    for number in numbers:
        seeded = gh.add_comment(OWNER, REPO, number, body, user_login=REVIEWER)
        payload = pr_comment(
            example,
            body=body,
            owner=OWNER,
            repo=REPO,
            pr_number=number,
            comment_id=int(seeded["id"]),
            login=REVIEWER,
            installation_id=gh.installation_id,
        )
        deliveries.append(signed("issue_comment", payload, secret, number))
    return deliveries

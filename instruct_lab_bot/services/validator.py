"""Validation before GPU time: changed taxonomy files → the `instruct-lab-bot/validate` check run.

The changed files and their contents are both read at the one head sha the job runs on: the
list from the compare API (`<base branch>...<sha>`, the same three-dot diff a PR's files are),
the contents from the contents API at that sha: no checkout, no `ilab`. Validation fails
closed: a changed file that cannot be read, is a symlink, a submodule or a folder, is too large
or has vanished is a failure, and so is a change too large for GitHub to list. The outcome per
head sha is remembered (unless a read failed for a reason that may pass), so a PR push and a
`generate` on the same sha validate once.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import structlog

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.yamllint import run_yamllint
from instruct_lab_bot.core import validation
from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.settings import Settings

log = structlog.get_logger(__name__)

CHECK_NAME = "instruct-lab-bot/validate"
REMEMBER = 7 * 24 * 3600
COMPARE_FILES = 300  # GitHub's compare API lists at most this many files


@dataclass(frozen=True)
class Changes:
    """The taxonomy files changed at one head sha; `complete` is False when GitHub could not
    list every changed file (then validation fails)."""

    files: list[str]
    complete: bool = True


@dataclass(frozen=True)
class Report:
    failures: int
    warnings: int
    url: str
    check_run_id: int


class Validator:
    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue

    @property
    def rules(self) -> validation.Rules:
        settings = self.settings
        return validation.Rules(settings.knowledge_hosts, settings.validation_max_file_bytes)

    async def changed_taxonomy_files(
        self, gh: Installation, owner: str, repo: str, base: str, sha: str
    ) -> Changes:
        """The taxonomy files changed at `sha` against the base branch `base` (to check and
        to generate from), removed ones excluded."""
        entries = await gh.compare_files(owner, repo, base, sha)
        present = {
            str(e["filename"])
            for e in entries
            if isinstance(e, dict) and "filename" in e and e.get("status") != "removed"
        }
        files = [path for path in validation.taxonomy_files(sorted(present)) if path in present]
        return Changes(files, complete=len(entries) < COMPARE_FILES)

    async def validate(
        self, gh: Installation, owner: str, repo: str, sha: str, changes: Changes
    ) -> Report:
        files = changes.files
        key = f"validated:{owner}/{repo}:{sha}:{int(changes.complete)}:{','.join(files)}"
        cached = await self.queue.recall(key)
        if cached:
            data = json.loads(cached)
            return Report(**data)
        problems: list[validation.Problem] = []
        if not changes.complete and files:
            message = wording.msg_too_many_files(COMPARE_FILES)
            problems.append(
                validation.Problem(files[0], 1, 1, "failure", message, wording.TITLE_TOO_MANY_FILES)
            )
        transient = False
        for path in files:
            found, again = await self._check_file(gh, owner, repo, sha, path)
            problems += found
            transient = transient or again
        report = await self._publish(gh, owner, repo, sha, problems)
        if not transient:  # a read that failed may pass next time: check again then
            await self.queue.remember(key, json.dumps(report.__dict__), ttl=REMEMBER)
        log.info(
            "validation.done",
            repo=f"{owner}/{repo}",
            sha=sha,
            files=len(files),
            failures=report.failures,
            warnings=report.warnings,
        )
        return report

    async def _check_file(
        self, gh: Installation, owner: str, repo: str, sha: str, path: str
    ) -> tuple[list[validation.Problem], bool]:
        """(problems of `path` at `sha`, whether a read failed in a way that may pass)."""
        rules = self.rules
        found = await gh.file_at(owner, repo, path, sha)
        unreadable = validation.file_problem(found, sha, rules.max_file_bytes)
        if unreadable is not None or found.content is None:
            return [unreadable] if unreadable is not None else [], found.transient
        attribution: bytes | None = None
        if "/" in path:
            sibling = await gh.file_at(
                owner, repo, path.rsplit("/", 1)[0] + "/attribution.txt", sha
            )
            if validation.file_problem(sibling, sha, rules.max_file_bytes) is None:
                attribution = sibling.content  # anything else reads as missing: a failure
            if sibling.transient:
                return [_problem_unread(sibling, sha, path)], True
        # CPU-bound (and runs yamllint): keep it off the event loop
        problems = await asyncio.to_thread(
            validation.validate_file,
            path,
            found.content,
            attribution=attribution,
            lint=run_yamllint,
            rules=rules,
        )
        return problems, False

    async def _publish(
        self,
        gh: Installation,
        owner: str,
        repo: str,
        sha: str,
        problems: list[validation.Problem],
    ) -> Report:
        failures = sum(1 for p in problems if p.level == "failure")
        warnings = sum(1 for p in problems if p.level == "warning")
        title, summary = validation.summary(problems)
        annotations = validation.annotations(problems)
        batches = validation.batches(annotations) or [[]]
        conclusion = "failure" if failures else "success"
        first = batches[0]
        check_run_id = await gh.create_check_run(
            owner,
            repo,
            {
                "name": CHECK_NAME,
                "head_sha": sha,
                "status": "completed" if len(batches) == 1 else "in_progress",
                **({"conclusion": conclusion} if len(batches) == 1 else {}),
                "output": {"title": title, "summary": summary, "annotations": first},
            },
        )
        for number, batch in enumerate(batches[1:], start=2):
            last = number == len(batches)
            payload: dict[str, object] = {
                "output": {"title": title, "summary": summary, "annotations": batch},
            }
            if last:
                payload |= {"status": "completed", "conclusion": conclusion}
            await gh.update_check_run(owner, repo, check_run_id, payload)
        url = f"{_web(self.settings.github_git_url)}/{owner}/{repo}/runs/{check_run_id}"
        return Report(failures, warnings, url, check_run_id)


def _web(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else "https://github.com"


def _problem_unread(found: validation.RepoFile, sha: str, path: str) -> validation.Problem:
    """The attribution.txt next to `path` could not be read: a failure on `path`'s line 1."""
    title, message = wording.unreadable(found.kind, sha, found.detail)
    return validation.Problem(path, 1, 1, "failure", f"attribution.txt: {message}", title)

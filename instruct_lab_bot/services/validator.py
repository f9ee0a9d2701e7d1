"""Validation before GPU time: changed taxonomy files → the `instruct-lab-bot/validate` check run.

The changed files and their contents are both read at the one head sha the job runs on: the
list from the compare API (`<base branch>...<sha>`, the same three-dot diff a PR's files are),
the contents from the contents API at that sha: no checkout, no `ilab`. Validation fails
closed: a changed file that cannot be read, is a symlink, a submodule or a folder, is too large
or has vanished is a failure, and so is a change too large for GitHub to list, more files than
`ILAB_BOT_VALIDATE_MAX_FILES`, or a file not checked within `ILAB_BOT_VALIDATE_TIMEOUT`.
Files are fetched and checked concurrently (bounded), yamllint runs once per batch of files and
the checks run in threads, so the dispatcher's event loop only waits. The outcome per head sha
is remembered (unless a read failed or time ran out), so a PR push and a `generate` on the
same sha validate once.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.yamllint import run_yamllint, run_yamllint_many
from instruct_lab_bot.core import validation
from instruct_lab_bot.core.messages import validation as wording
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.validation import bounds

log = structlog.get_logger(__name__)

CHECK_NAME = "instruct-lab-bot/validate"
REMEMBER = 7 * 24 * 3600
COMPARE_FILES = 300  # GitHub's compare API lists at most this many files
LINT_BATCH = 50  # texts per yamllint process


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


@dataclass
class _Fetched:
    """One changed file as read at the head: its content and its folder's attribution.txt,
    or the problems that stop it from being checked (`transient`: a read may pass later)."""

    content: bytes | None = None
    attribution: bytes | None = None
    problems: list[validation.Problem] = field(default_factory=list)
    transient: bool = False


@dataclass(frozen=True)
class _Head:
    """The PR head whose files are validated."""

    gh: Installation
    repo: RepoRef
    sha: str
    max_bytes: int

    async def fetch(self, path: str) -> _Fetched:
        found = await self.gh.file_at(self.repo, path, self.sha)
        unreadable = validation.file_problem(found, self.sha, self.max_bytes)
        if unreadable is not None or found.content is None:
            problems = [unreadable] if unreadable is not None else []
            return _Fetched(problems=problems, transient=found.transient)
        if "/" not in path:
            return _Fetched(found.content)
        folder = path.rsplit("/", 1)[0]
        sibling = await self.gh.file_at(
            self.repo, f"{folder}/{validation.ATTRIBUTION_NAME}", self.sha
        )
        if sibling.transient:
            return _Fetched(problems=[_problem_unread(sibling, self.sha, path)], transient=True)
        ok = validation.file_problem(sibling, self.sha, self.max_bytes) is None
        # anything but a readable file reads as missing: a failure of the check itself
        return _Fetched(found.content, sibling.content if ok else None)


class Validator:
    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue

    @property
    def rules(self) -> validation.Rules:
        settings = self.settings
        return validation.Rules(settings.knowledge_hosts, settings.validation_max_file_bytes)

    async def changed_taxonomy_files(
        self, gh: Installation, repo: RepoRef, base: str, sha: str
    ) -> Changes:
        """The taxonomy files changed at `sha` against the base branch `base` (to check and
        to generate from), removed ones excluded."""
        return changes_from(await gh.compare_files(repo, base, sha))

    async def pull_changes(self, gh: Installation, pull: PullRequestRef) -> Changes:
        """The same for the PR's current head, without knowing its sha (the PR's file list,
        capped like the compare API)."""
        return changes_from(await gh.pull_files(pull, COMPARE_FILES))

    async def validate(self, gh: Installation, repo: RepoRef, sha: str, changes: Changes) -> Report:
        files = changes.files
        key = f"validated:{repo.full_name}:{sha}:{int(changes.complete)}:{','.join(files)}"
        cached = await self.queue.recall(key)
        if cached:
            data = json.loads(cached)
            return Report(**data)
        problems: list[validation.Problem] = []
        if not changes.complete and files:
            message = wording.msg_too_many_changed(COMPARE_FILES)
            problems.append(
                validation.Problem(
                    files[0], 1, 1, "failure", message, wording.TITLE_TOO_MANY_CHANGED
                )
            )
        checked, final = await self._check(gh, repo, sha, files)
        report = await self._publish(gh, repo, sha, problems + checked)
        if final:  # a failed read or a timed-out check may pass next time: check again then
            await self.queue.remember(key, json.dumps(report.__dict__), ttl=REMEMBER)
        log.info(
            "validation.done",
            repo=repo.full_name,
            sha=sha,
            files=len(files),
            failures=report.failures,
            warnings=report.warnings,
        )
        return report

    async def _check(
        self, gh: Installation, repo: RepoRef, sha: str, files: list[str]
    ) -> tuple[list[validation.Problem], bool]:
        """Every file's problems (in `files` order) and whether the outcome is final.

        More than `validate_max_files` files is one failure, and none of them is fetched;
        a file not checked within `validate_timeout` is a failure (and not final).
        """
        settings = self.settings
        over = bounds.too_many_files(files, settings.validate_max_files)
        if over:
            return over, True
        found: dict[str, list[validation.Problem]] = {}
        head = _Head(gh, repo, sha, self.rules.max_file_bytes)
        try:
            async with asyncio.timeout(settings.validate_timeout):
                transient = await self._check_all(head, files, found)
        except TimeoutError:
            late = [path for path in files if path not in found]
            log.warning("validation.timed_out", repo=repo.full_name, sha=sha, late=len(late))
            found |= {path: bounds.not_checked([path], settings.validate_timeout) for path in late}
            return [p for path in files for p in found[path]], False
        return [p for path in files for p in found[path]], not transient

    async def _check_all(
        self, head: _Head, files: list[str], found: dict[str, list[validation.Problem]]
    ) -> bool:
        """Fetch every file, lint them all in a few yamllint processes, then check each in a
        thread, `validate_concurrency` at a time: the event loop only waits. True when a
        read failed in a way that may pass later."""
        width = self.settings.validate_concurrency
        slots = asyncio.Semaphore(width)
        fetched: dict[str, _Fetched] = {}
        rules = self.rules

        async def fetch(path: str) -> None:
            async with slots:
                fetched[path] = await head.fetch(path)

        async def check(path: str) -> None:
            one = fetched[path]
            if one.problems or one.content is None:
                found[path] = one.problems
                return
            async with slots:  # CPU-bound: off the event loop
                found[path] = await asyncio.to_thread(
                    validation.validate_file,
                    path,
                    one.content,
                    attribution=one.attribution,
                    lint=lint,
                    rules=rules,
                )

        await _all(fetch(path) for path in files)
        lint = await _batch_lint([_text(one.content) for one in fetched.values()], width)
        await _all(check(path) for path in files)
        return any(one.transient for one in fetched.values())

    async def _publish(
        self,
        gh: Installation,
        repo: RepoRef,
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
            await gh.update_check_run(repo, check_run_id, payload)
        url = f"{_web(self.settings.github_git_url)}/{repo.full_name}/runs/{check_run_id}"
        return Report(failures, warnings, url, check_run_id)


def changes_from(entries: list[Any]) -> Changes:
    """The taxonomy files among GitHub's changed-file entries, removed ones excluded."""
    present = {
        str(e["filename"])
        for e in entries
        if isinstance(e, dict) and "filename" in e and e.get("status") != "removed"
    }
    files = [path for path in validation.taxonomy_files(sorted(present)) if path in present]
    return Changes(files, complete=len(entries) < COMPARE_FILES)


async def _all(checks: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run `checks` concurrently; the first error cancels the rest and is raised as itself
    (not as an exception group: callers handle `GitHubError` and Redis errors by type)."""
    try:
        async with asyncio.TaskGroup() as group:
            for one in checks:
                group.create_task(one)
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None


def _text(content: bytes | None) -> str:
    """What yamllint will be asked about, as `validate_file` normalises it ('' when the file
    is unreadable or not UTF-8: such a file is linted, if at all, on its own)."""
    if content is None:
        return ""
    try:
        return content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return ""


async def _batch_lint(texts: list[str], width: int) -> validation.Lint:
    """A `Lint` that knows yamllint's findings for `texts` already: they are linted in at
    most `width` yamllint processes at once, `LINT_BATCH` texts each (one interpreter start
    per batch, not per file). A text it does not know (another normalisation of the same
    file, or a batch that failed) is linted on its own."""
    texts = [text for text in texts if text]
    unique = list(dict.fromkeys(text.replace("\r\n", "\n").replace("\r", "\n") for text in texts))
    size = max(1, min(LINT_BATCH, math.ceil(len(unique) / width)))
    chunks = [unique[i : i + size] for i in range(0, len(unique), size)]
    slots = asyncio.Semaphore(width)

    async def lint_chunk(chunk: list[str]) -> list[list[validation.LintFinding]] | None:
        async with slots:
            return await asyncio.to_thread(run_yamllint_many, chunk)

    known: dict[str, list[validation.LintFinding]] = {}
    for chunk, findings in zip(chunks, await asyncio.gather(*map(lint_chunk, chunks)), strict=True):
        if findings is not None:
            known.update(zip(chunk, findings, strict=True))

    def lint(text: str) -> list[validation.LintFinding]:
        return known[text] if text in known else run_yamllint(text)

    return lint


def _web(url: str) -> str:
    return url if url.startswith(("http://", "https://")) else "https://github.com"


def _problem_unread(found: validation.RepoFile, sha: str, path: str) -> validation.Problem:
    """The attribution.txt next to `path` could not be read: a failure on `path`'s line 1."""
    title, message = wording.unreadable(found.kind, sha, found.detail)
    return validation.Problem(path, 1, 1, "failure", f"attribution.txt: {message}", title)

"""Validation before GPU time: changed taxonomy files → the `instruct-lab-bot/validate` check run.

Changed files come from the PR files API (paginated), contents from the contents API at the
head sha: no checkout, no `ilab`. The outcome per head sha is remembered, so a PR push and a
`generate` on the same sha validate once.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.adapters.yamllint import run_yamllint, run_yamllint_many
from instruct_lab_bot.core import validation
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.validation import bounds

log = structlog.get_logger(__name__)

CHECK_NAME = "instruct-lab-bot/validate"
REMEMBER = 7 * 24 * 3600
LINT_BATCH = 50  # texts per yamllint process


@dataclass(frozen=True)
class Report:
    failures: int
    warnings: int
    url: str
    check_run_id: int


@dataclass(frozen=True)
class _Head:
    """The PR head whose files are validated."""

    gh: Installation
    owner: str
    repo: str
    sha: str

    async def texts(self, path: str) -> tuple[str | None, str | None]:
        """`path`'s text and its folder's attribution.txt (None: missing)."""
        text = await self.gh.file_text(self.owner, self.repo, path, self.sha)
        if "/" not in path:
            return text, None
        folder = path.rsplit("/", 1)[0]
        attribution = await self.gh.file_text(
            self.owner, self.repo, f"{folder}/{validation.ATTRIBUTION_NAME}", self.sha
        )
        return text, attribution


class Validator:
    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue

    async def changed_taxonomy_files(
        self, gh: Installation, owner: str, repo: str, number: int
    ) -> list[str]:
        """The PR's taxonomy files to check (and to generate from), removed ones excluded."""
        entries = await gh.pull_files(owner, repo, number)
        present = {str(e["filename"]) for e in entries if e.get("status") != "removed"}
        return [path for path in validation.taxonomy_files(sorted(present)) if path in present]

    async def validate(
        self, gh: Installation, owner: str, repo: str, sha: str, files: list[str]
    ) -> Report:
        key = f"validated:{owner}/{repo}:{sha}:{','.join(files)}"
        cached = await self.queue.recall(key)
        if cached:
            data = json.loads(cached)
            return Report(**data)
        problems, complete = await self._check(gh, owner, repo, sha, files)
        report = await self._publish(gh, owner, repo, sha, problems)
        if complete:  # a timed-out validation is not remembered: the next ask checks again
            await self.queue.remember(key, json.dumps(report.__dict__), ttl=REMEMBER)
        log.info(
            "validation.done",
            repo=f"{owner}/{repo}",
            sha=sha,
            files=len(files),
            failures=report.failures,
            warnings=report.warnings,
            complete=complete,
        )
        return report

    async def _check(
        self, gh: Installation, owner: str, repo: str, sha: str, files: list[str]
    ) -> tuple[list[validation.Problem], bool]:
        """Every file's problems (in `files` order) and whether every file was checked.

        More than `validate_max_files` files is one failure, and none of them is fetched;
        a file not checked within `validate_timeout` is a failure.
        """
        settings = self.settings
        over = bounds.too_many_files(files, settings.validate_max_files)
        if over:
            return over, True
        found: dict[str, list[validation.Problem]] = {}
        try:
            async with asyncio.timeout(settings.validate_timeout):
                await self._check_all(_Head(gh, owner, repo, sha), files, found)
        except TimeoutError:
            late = [path for path in files if path not in found]
            log.warning("validation.timed_out", repo=f"{owner}/{repo}", sha=sha, late=len(late))
            found |= {path: bounds.not_checked([path], settings.validate_timeout) for path in late}
            return [p for path in files for p in found[path]], False
        return [p for path in files for p in found[path]], True

    async def _check_all(
        self, head: _Head, files: list[str], found: dict[str, list[validation.Problem]]
    ) -> None:
        """Fetch every file, lint them all in a few yamllint processes, then check each in a
        thread, `validate_concurrency` at a time: the event loop only waits."""
        width = self.settings.validate_concurrency
        slots = asyncio.Semaphore(width)
        fetched: dict[str, tuple[str | None, str | None]] = {}

        async def fetch(path: str) -> None:
            async with slots:
                fetched[path] = await head.texts(path)

        async def check(path: str) -> None:
            text, attribution = fetched[path]
            async with slots:  # CPU-bound: off the event loop
                found[path] = await asyncio.to_thread(
                    validation.validate_file, path, text, attribution=attribution, lint=lint
                )

        await _all(fetch(path) for path in files)
        lint = await _batch_lint([text for text, _ in fetched.values() if text], width)
        await _all(check(path) for path in files)

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


async def _all(checks: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run `checks` concurrently; the first error cancels the rest and is raised as itself
    (not as an exception group: callers handle `GitHubError` and Redis errors by type)."""
    try:
        async with asyncio.TaskGroup() as group:
            for one in checks:
                group.create_task(one)
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None


async def _batch_lint(texts: list[str], width: int) -> validation.Lint:
    """A `Lint` that knows yamllint's findings for `texts` already: they are linted in at
    most `width` yamllint processes at once, `LINT_BATCH` texts each (one interpreter start
    per batch, not per file). A text it does not know (another normalisation of the same
    file, or a batch that failed) is linted on its own."""
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

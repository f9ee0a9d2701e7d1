"""GitHub's view of one pull request, asked once per delivery and early: the PR (head, base,
labels, state) and its changed files, both at once, while the reaction, the repository
configuration and the permission check are in flight; a job's gates then find the answers
waiting (issue 17: the queued check run one round trip after them). Only reads: a command
refused later wasted two reads, never a write.

The file list is GitHub's for the PR's head at the time it answered; were the PR pushed
between the two answers, the list would be the newer head's. That push's `synchronize` event
supersedes a job queued for the older head, so no job runs on a mismatched list."""

from __future__ import annotations

import asyncio
from typing import Any

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.services.validator import Changes, Validator


class PullPrefetch:
    def __init__(self, gh: Installation, pull: PullRequestRef, validator: Validator) -> None:
        self.gh = gh
        self.pull = pull
        self.validator = validator
        self._data: asyncio.Task[dict[str, Any]] | None = None
        self._files: asyncio.Task[Changes] | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, files: bool = True) -> None:
        """Ask for the PR and (unless the command likely repeats a live job, which needs no
        files) for its files now, concurrently."""
        if self._data is None:
            self._data = self._task(self.gh.get_pull(self.pull))
        if files and self._files is None:
            self._files = self._task(self.validator.pull_changes(self.gh, self.pull))

    def _task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        return task

    async def pull_data(self) -> dict[str, Any]:
        self.start(files=False)
        assert self._data is not None
        return await asyncio.shield(self._data)

    async def changes(self, base: str, head: str) -> Changes:
        """The files changed at `head` against `base`: the prefetched list when the
        prefetched PR has that base and head, else asked now (the compare API)."""
        data = await self.pull_data()
        if _refs(data) == (base, head):
            self.start(files=True)
            assert self._files is not None
            return await asyncio.shield(self._files)
        return await self.validator.changed_taxonomy_files(self.gh, self.pull.repo, base, head)

    async def aclose(self) -> None:
        """Cancel what nobody waited for (a refused command); retrieve every outcome."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _refs(data: dict[str, Any]) -> tuple[str, str]:
    try:
        return str(data["base"]["ref"]), str(data["head"]["sha"])
    except (KeyError, TypeError):
        return "", ""

"""GitHub's view of one pull request, asked once per delivery and early: the PR (head, base,
labels, state), then its changed taxonomy files at that head. It runs while the reaction, the
repository configuration and the permission check are in flight, so a job's gates find the
answers waiting (issue 17: the first feedback in about three GitHub round trips). Only reads:
a command that is refused later wasted two reads, never a write."""

from __future__ import annotations

import asyncio
import contextlib
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
        self._changes: asyncio.Task[Changes] | None = None
        self._changes_for: tuple[str, str] = ("", "")
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        """Ask for the PR now, and for its files as soon as its head is known."""
        if self._data is None:
            self._data = asyncio.create_task(self._read())
            self._tasks.append(self._data)

    async def _read(self) -> dict[str, Any]:
        data = await self.gh.get_pull(self.pull)
        with contextlib.suppress(KeyError, TypeError):
            self._start_changes(str(data["base"]["ref"]), str(data["head"]["sha"]))
        return data

    def _start_changes(self, base: str, head: str) -> None:
        self._changes_for = (base, head)
        self._changes = asyncio.create_task(
            self.validator.changed_taxonomy_files(self.gh, self.pull.repo, base, head)
        )
        self._tasks.append(self._changes)

    async def pull_data(self) -> dict[str, Any]:
        self.start()
        assert self._data is not None
        return await asyncio.shield(self._data)

    async def changes(self, base: str, head: str) -> Changes:
        """The files changed at `head` against `base`: the prefetched answer when it is for
        the same commits, else asked now."""
        if self._changes is None or self._changes_for != (base, head):
            self._start_changes(base, head)
        assert self._changes is not None
        return await asyncio.shield(self._changes)

    async def aclose(self) -> None:
        """Cancel what nobody waited for (a refused command); retrieve every outcome."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

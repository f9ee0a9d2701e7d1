"""Each repository's own configuration, read from its default branch through the GitHub
adapter (never from a pull request), parsed in core and cached per commit.

A file with errors is reported once per commit as a failing `instruct-lab-bot/config` check
run on that commit, and the repository gets the admin's defaults; a GitHub error while reading
gives the admin's defaults too (uncached, so the next request tries again). Nothing here stops
another repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.adapters.github import GitHubError, Installation, QuotaSpent
from instruct_lab_bot.adapters.redis.queue import Queue
from instruct_lab_bot.core.messages.repo_config import config_check_run
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.repo_config import (
    ConfigError,
    LoadedConfig,
    parse_repo_config,
    team_errors,
)
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.validation import RepoFile

log = structlog.get_logger(__name__)

HEAD_TTL = 60.0  # seconds a default branch's head is trusted for (a push moves it)
CONFIG_TTL = 3600.0  # an installation token's lifetime: no answer outlives the access it used
CHECK_TTL = 30 * 24 * 3600  # seconds the "reported this commit" claim is kept
MAX_CACHED = 10_000  # repositories × commits kept; the oldest go first


class RepoConfigs:
    def __init__(
        self, settings: Settings, queue: Queue, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.clock = clock
        self._heads: dict[tuple[int, str, str], tuple[float, str]] = {}
        self._configs: dict[tuple[int, str, str], tuple[float, LoadedConfig]] = {}

    async def load(self, gh: Installation, repo: RepoRef, default_branch: str) -> LoadedConfig:
        """The configuration that applies to `repo` now; never raises for GitHub's errors but
        `QuotaSpent`: the event then waits for the reset rather than go on with defaults."""
        if not default_branch:
            return LoadedConfig()
        try:
            sha = await self._head(gh, repo, default_branch)
            if not sha:  # no such branch (an empty repository)
                return LoadedConfig()
            key = (gh.installation_id, repo.key, sha)
            cached = self._configs.get(key)
            if cached and self.clock() - cached[0] < CONFIG_TTL:
                return cached[1]
            path = self.settings.repo_config_path
            loaded = self._parse(repo, sha, await gh.file_at(repo, path, sha))
        except QuotaSpent:
            raise
        except GitHubError as exc:
            log.warning("repo_config.unreadable", repo=str(repo), error=str(exc))
            return LoadedConfig()
        if loaded is None:  # the contents API failed: try again next time
            return LoadedConfig()
        self._remember(key, loaded)
        if loaded.found:
            await self._report(gh, repo, loaded)
        return loaded

    async def _head(self, gh: Installation, repo: RepoRef, branch: str) -> str:
        """The branch's commit ("" when there is none), asked at most once a `HEAD_TTL`."""
        key = (gh.installation_id, repo.key, branch)
        cached = self._heads.get(key)
        if cached and self.clock() - cached[0] < HEAD_TTL:
            return cached[1]
        sha = await gh.branch_head(repo, branch) or ""
        if len(self._heads) >= MAX_CACHED:
            del self._heads[next(iter(self._heads))]
        self._heads[key] = (self.clock(), sha)
        return sha

    def _parse(self, repo: RepoRef, sha: str, file: RepoFile) -> LoadedConfig | None:
        path = self.settings.repo_config_path
        if file.kind == "missing":
            return LoadedConfig(path=path, sha=sha)
        if file.kind == "error":
            log.warning("repo_config.unreadable", repo=str(repo), error=file.detail)
            return None
        if file.kind != "file" or file.content is None:
            error = ConfigError(1, f"must be a regular file of at most 1 MB, not a {file.kind}")
            return LoadedConfig(path=path, sha=sha, found=True, errors=(error,))
        text = file.content.decode("utf-8", "replace")
        config, errors = parse_repo_config(text, self.settings)
        errors += team_errors(config, repo.owner, text)
        if errors:
            log.info("repo_config.broken", repo=str(repo), sha=sha, errors=len(errors))
            return LoadedConfig(path=path, sha=sha, found=True, errors=tuple(errors))
        return LoadedConfig(config, path, sha, found=True)

    def _remember(self, key: tuple[int, str, str], loaded: LoadedConfig) -> None:
        if len(self._configs) >= MAX_CACHED:
            del self._configs[next(iter(self._configs))]
        self._configs[key] = (self.clock(), loaded)

    async def _report(self, gh: Installation, repo: RepoRef, loaded: LoadedConfig) -> None:
        """One check run per commit across every dispatcher process (a Redis claim)."""
        claim = f"config-check:{repo.key}@{loaded.sha}"
        try:
            if not await self.queue.claim_once(claim, ttl=CHECK_TTL):
                return
            await gh.create_check_run(repo, config_check_run(loaded))
        except (GitHubError, RedisError) as exc:
            log.warning("repo_config.check_failed", repo=str(repo), error=str(exc))

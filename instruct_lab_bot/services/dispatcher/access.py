"""Whether the person asking may run a command: GitHub's facts about them, cached briefly,
judged by `core.permissions.decide`."""

from __future__ import annotations

import time

import structlog

from instruct_lab_bot.adapters.github import Installation
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.messages.commands import denied
from instruct_lab_bot.core.permissions import Facts, Policy, decide
from instruct_lab_bot.core.refs import RepoRef
from instruct_lab_bot.core.reply_limits import ReplyReason
from instruct_lab_bot.core.repo_config import policy as repo_policy
from instruct_lab_bot.services.dispatcher.context import Request
from instruct_lab_bot.services.metrics import ServerMetrics

log = structlog.get_logger(__name__)

FACTS_TTL = 60.0  # seconds a person's role and team memberships are trusted for


class Gatekeeper:
    def __init__(self, policy: Policy, metrics: ServerMetrics) -> None:
        self.policy = policy
        self.metrics = metrics
        self._facts: dict[tuple[RepoRef, str, tuple[str, ...]], tuple[float, Facts]] = {}

    async def allowed(self, request: Request, command: str) -> bool:
        """Open commands need no GitHub call; a refusal is answered politely, once. The
        repository's configuration may name its own teams (the role rule stays the admin's)."""
        policy = repo_policy(request.config, self.policy)
        if not policy.restricted(command):
            return True
        login = request.sender
        with span("permission_check", user=login, command=command):
            facts = await self._facts_for(request.gh, request.pull.repo, login, policy)
        decision = decide(policy, command, facts)
        if not decision.allowed:
            self.metrics.commands.labels(command, "denied").inc()
            log.info("command.denied", user=login, command=command, reason=decision.reason)
            text = denied(command, login, policy)
            await request.reply.once(request.marker, text, ReplyReason.DENIED)
        return decision.allowed

    async def _facts_for(
        self, gh: Installation, repo: RepoRef, login: str, policy: Policy
    ) -> Facts:
        key = (repo, login, policy.allowed_teams)
        cached = self._facts.get(key)
        if cached and time.monotonic() - cached[0] < FACTS_TTL:
            return cached[1]
        if login.endswith("[bot]"):
            facts = Facts(login, is_bot=True)
        else:
            facts = await self._ask_github(gh, repo, login, policy)
        self._facts[key] = (time.monotonic(), facts)
        return facts

    async def _ask_github(
        self, gh: Installation, repo: RepoRef, login: str, policy: Policy
    ) -> Facts:
        role = "none"
        if policy.role_rule:
            role = await gh.permission(repo, login)
        teams: set[str] = set()
        for team in policy.allowed_teams:
            org, slug = team.split("/", 1)
            if await gh.team_member(org, slug, login):
                teams.add(team)
        return Facts(login, role=role, teams=frozenset(teams))

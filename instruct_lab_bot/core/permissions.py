"""Who may run what (pure): the policy, and the decision for one person and one command.

Facts (repository role, team memberships, being a bot) are gathered by the dispatcher from
GitHub; the rules live here so the permission matrix is unit-testable. Which commands are
restricted by default is a column of the command table. An empty team list never
means "everyone": it only means team membership grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from instruct_lab_bot.core.command_table import DEFAULT_RESTRICTED
from instruct_lab_bot.core.setting_values import ROLES
from instruct_lab_bot.core.settings import Settings


@dataclass(frozen=True)
class Policy:
    min_permission: str  # a role from ROLES; "none" disables the role rule
    allowed_teams: tuple[str, ...]  # "org/team" slugs whose active members may run commands
    restricted_commands: frozenset[str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            settings.min_permission,
            settings.allowed_teams,
            frozenset(settings.restricted_commands),
        )

    def restricted(self, command: str) -> bool:
        return command in self.restricted_commands

    @property
    def role_rule(self) -> bool:
        return self.min_permission != "none"


@dataclass(frozen=True)
class Facts:
    """What GitHub says about the person asking."""

    login: str
    is_bot: bool = False
    role: str = "none"  # their repository role: none, read, triage, write, maintain, admin
    teams: frozenset[str] = frozenset()  # allowed teams they are an active member of


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "open" | "role" | "team" | "bot" | "denied"


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else 0


def decide(policy: Policy, command: str, facts: Facts) -> Decision:
    if facts.is_bot:
        return Decision(False, "bot")
    if not policy.restricted(command):
        return Decision(True, "open")
    if policy.role_rule and role_rank(facts.role) >= role_rank(policy.min_permission):
        return Decision(True, "role")
    if facts.teams & set(policy.allowed_teams):
        return Decision(True, "team")
    return Decision(False, "denied")


def role_from_permission(data: dict[str, object]) -> str:
    """The role in GitHub's collaborator-permission answer (`role_name` knows triage and
    maintain; `permission` folds them into read and write)."""
    for key in ("role_name", "permission"):
        value = data.get(key)
        if isinstance(value, str) and value in ROLES:
            return value
    return "none"


#: The README's example: minimum `write`, one allowed team, the default restricted commands.
EXAMPLE_TEAM = "instructlab/reviewers"
EXAMPLE_POLICY = Policy("write", (EXAMPLE_TEAM,), frozenset(DEFAULT_RESTRICTED))
#: The rows of the README's permission matrix: who, and example people who all answer alike.
EXAMPLE_PEOPLE: tuple[tuple[str, tuple[Facts, ...]], ...] = (
    (
        "admin, maintain, write",
        (Facts("ada", role="admin"), Facts("max", role="maintain"), Facts("wes", role="write")),
    ),
    (
        "member of an allowed team (read role)",
        (Facts("tess", role="read", teams=frozenset({EXAMPLE_TEAM})),),
    ),
    (
        "triage, read, outsider, pending team invitee, the PR's author without write",
        (
            Facts("trix", role="triage"),
            Facts("rae", role="read"),
            Facts("otto"),
            Facts("ivy"),  # invited to the team, not yet an active member
            Facts("author", role="read"),
        ),
    ),
    ("a bot", (Facts("helper[bot]", is_bot=True),)),
)

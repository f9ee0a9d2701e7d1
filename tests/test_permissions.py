"""The permission matrix (README "Permissions"), driven through `core.permissions.decide` and the
command table: pure, no Redis, GitHub or sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from instruct_lab_bot.core import messages
from instruct_lab_bot.core.command_table import COMMAND_TABLE, DEFAULT_RESTRICTED, KNOWN_COMMANDS
from instruct_lab_bot.core.permissions import (
    EXAMPLE_PEOPLE,
    EXAMPLE_POLICY,
    EXAMPLE_TEAM,
    Facts,
    Policy,
    decide,
    role_from_permission,
)
from instruct_lab_bot.core.settings import Settings, parse_settings

README = Path(__file__).resolve().parent.parent / "README.md"
OPEN = ("help", "status", "links")
RESTRICTED = ("generate", "precheck", "retry", "cancel", "train", "test", "serve", "chat")

#: (person, expected reason for the restricted commands); open commands are "open" for all.
CASES: list[tuple[Facts, str]] = [
    (Facts("ada", role="admin"), "role"),
    (Facts("max", role="maintain"), "role"),
    (Facts("wes", role="write"), "role"),
    (Facts("tess", role="read", teams=frozenset({EXAMPLE_TEAM})), "team"),
    (Facts("trix", role="triage"), "denied"),
    (Facts("rae", role="read"), "denied"),
    (Facts("otto"), "denied"),
    (Facts("ivy", role="none", teams=frozenset()), "denied"),  # invited, not yet active
    (Facts("mona", role="read", teams=frozenset({"instructlab/other"})), "denied"),
    (Facts("odd", role="superuser"), "denied"),  # an unknown role ranks lowest
]


def test_the_table_says_which_commands_are_restricted_by_default() -> None:
    assert tuple(s.name for s in COMMAND_TABLE if not s.restricted) == OPEN
    assert DEFAULT_RESTRICTED == RESTRICTED
    assert Settings().restricted_commands == DEFAULT_RESTRICTED
    assert EXAMPLE_POLICY.restricted_commands == frozenset(RESTRICTED)


@pytest.mark.parametrize(("facts", "reason"), CASES, ids=[f.login for f, _ in CASES])
def test_matrix_with_minimum_write_and_one_team(facts: Facts, reason: str) -> None:
    for command in OPEN:
        assert decide(EXAMPLE_POLICY, command, facts).reason == "open"
    for command in RESTRICTED:
        decision = decide(EXAMPLE_POLICY, command, facts)
        assert decision.reason == reason
        assert decision.allowed is (reason in ("role", "team"))


@pytest.mark.parametrize("command", KNOWN_COMMANDS)
def test_bots_are_never_obeyed(command: str) -> None:
    bot = Facts("helper[bot]", is_bot=True, role="admin", teams=frozenset({EXAMPLE_TEAM}))
    assert decide(EXAMPLE_POLICY, command, bot).allowed is False
    assert decide(EXAMPLE_POLICY, command, bot).reason == "bot"


def test_readme_matrix_is_the_generated_one() -> None:
    matrix = messages.permission_matrix(EXAMPLE_POLICY, EXAMPLE_PEOPLE)
    assert (
        matrix.splitlines()[0]
        == "| who | help, status, links | generate, precheck, retry, cancel, train, test, serve, "
        "chat |"
    )
    assert "| a bot | ignored | ignored |" in matrix
    assert matrix in README.read_text()


def test_matrix_rows_must_agree() -> None:
    rows = [("write and read", (Facts("wes", role="write"), Facts("rae", role="read")))]
    with pytest.raises(ValueError, match="write and read"):
        messages.permission_matrix(EXAMPLE_POLICY, rows)


def test_role_rule_off_leaves_only_teams() -> None:
    policy = Policy("none", (EXAMPLE_TEAM,), frozenset(RESTRICTED))
    assert not decide(policy, "generate", Facts("ada", role="admin")).allowed
    assert decide(policy, "generate", Facts("tess", teams=frozenset({EXAMPLE_TEAM}))).allowed
    assert "write" not in messages.who_may(policy)


def test_an_empty_team_list_never_means_everyone() -> None:
    policy = Policy("none", (), frozenset(RESTRICTED))
    assert decide(policy, "cancel", Facts("tess", teams=frozenset({EXAMPLE_TEAM}))).reason == (
        "denied"
    )
    assert decide(policy, "help", Facts("otto")).allowed
    assert messages.who_may(policy).startswith("nobody")


def test_higher_minimum_denies_write() -> None:
    policy = Policy("maintain", (), frozenset(RESTRICTED))
    assert not decide(policy, "retry", Facts("wes", role="write")).allowed
    assert decide(policy, "retry", Facts("max", role="maintain")).allowed


def test_restricted_commands_come_from_settings() -> None:
    env = {"ILAB_BOT_WEBHOOK_SECRET": "s" * 32, "ILAB_BOT_RESTRICTED_COMMANDS": "status,generate"}
    policy = Policy.from_settings(parse_settings(env, require_github=False))
    outsider = Facts("otto")
    assert not decide(policy, "status", outsider).allowed
    assert decide(policy, "cancel", outsider).allowed
    help_text = messages.help_text("bot", policy)
    assert "| `@bot status` | list this PR's jobs" in help_text
    assert help_text.count("| restricted |") == 2


def test_role_from_github_permission_answer() -> None:
    assert role_from_permission({"role_name": "maintain", "permission": "write"}) == "maintain"
    assert role_from_permission({"permission": "read"}) == "read"
    assert role_from_permission({"role_name": "custom-role", "permission": "triage"}) == "triage"
    assert role_from_permission({}) == "none"

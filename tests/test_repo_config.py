"""Per-repository configuration: the file on the default branch, checked against the shipped
schema and the admin's bounds, applied per repository by the dispatcher; a broken file is
reported (check run, `status`) and leaves every other repository alone."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from instruct_lab_bot.core.repo_config import (
    LoadedConfig,
    RepoConfig,
    generate_args,
    parse_repo_config,
    team_errors,
)
from instruct_lab_bot.core.settings import PREFIX, SettingsError, parse_settings
from testkit.harness import RunningBot, run_bot
from tests.fixtures.bot import make_settings, post_webhook
from tests.fixtures.redis import events_settled
from tests.fixtures.world import MAINTAINER, World

OWNER = "instructlab"
PATH = ".github/instruct-lab-bot.yml"
SHA_TAXONOMY = "a" * 40
SHA_SKILLS = "b" * 40
SKILLS_PR = 3

TAXONOMY_CONFIG = """\
version: 1
required_labels: [ready-for-sdg]
commands: [generate, status, help]
generate:
  pipeline: full
  instructions_per_seed: 3
welcome: Welcome to the taxonomy! A triager adds `ready-for-sdg` when the seeds look right.
"""
SKILLS_CONFIG = """\
version: 1
commands: [help, status]
teams: [instructlab/skill-reviewers]
"""
BROKEN_CONFIG = """\
version: 1
commands: [generate, dance]
generate:
  instructions_per_seed: 999
colour: blue
"""


# -- core: schema, bounds, application ------------------------------------------------------


def test_a_valid_file_sets_what_it_names() -> None:
    config, errors = parse_repo_config(TAXONOMY_CONFIG, make_settings())
    assert errors == []
    assert config.required_labels == ("ready-for-sdg",)
    assert config.commands == frozenset({"generate", "status", "help"})
    assert isinstance(config.welcome, str) and config.welcome.startswith("Welcome to the")
    loaded = LoadedConfig(config, PATH, SHA_TAXONOMY, found=True)
    assert generate_args(loaded) == ("--sdg-scale-factor", "3", "--pipeline", "full")


def test_schema_errors_point_at_their_lines() -> None:
    config, errors = parse_repo_config(BROKEN_CONFIG, make_settings())
    assert config == RepoConfig()  # refused as a whole: the admin's defaults apply
    by_line = {e.line: e.message for e in errors}
    assert set(by_line) == {2, 4, 5}, errors
    assert "dance" in by_line[2] and "colour" in by_line[5]
    assert "instructions_per_seed" not in by_line[4] or "999" in by_line[4]


def test_the_admin_bounds_hold() -> None:
    text = "generate:\n  pipeline: full\n  instructions_per_seed: 12\n"
    tight = make_settings(repo_pipelines=("simple",), repo_max_instructions=10)
    _config, errors = parse_repo_config(text, tight)
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (2, "generate/pipeline"),
        (3, "generate/instructions_per_seed"),
    ]
    assert parse_repo_config(text, make_settings())[1] == []  # within the defaults


def test_teams_must_be_the_repository_owners() -> None:
    config, errors = parse_repo_config(
        "teams: [other-org/admins, instructlab/ok]\n", make_settings()
    )
    assert errors == []
    (error,) = team_errors(config, OWNER, "teams: [other-org/admins, instructlab/ok]\n")
    assert "other-org/admins" in error.message


@pytest.mark.parametrize("text", ["[1, 2]\n", "a: [\n", "welcome: 7\n", "version: 2\n"])
def test_unreadable_or_wrongly_typed_files_are_errors(text: str) -> None:
    config, errors = parse_repo_config(text, make_settings())
    assert errors and config == RepoConfig()


def test_bounds_and_path_are_settings() -> None:
    env = {
        f"{PREFIX}WEBHOOK_SECRET": "x" * 40,
        f"{PREFIX}REPO_CONFIG_PATH": ".github/bot.yml",
        f"{PREFIX}REPO_PIPELINES": "simple",
        f"{PREFIX}REPO_MAX_INSTRUCTIONS": "5",
    }
    settings = parse_settings(env, require_github=False)
    assert settings.repo_config_path == ".github/bot.yml"
    assert (settings.repo_pipelines, settings.repo_max_instructions) == (("simple",), 5)
    with pytest.raises(SettingsError, match="REPO_CONFIG_PATH"):
        parse_settings({**env, f"{PREFIX}REPO_CONFIG_PATH": "../x.yml"}, require_github=False)


# -- the dispatcher, two repositories -------------------------------------------------------


def publish_configs(world: World, taxonomy: str, skills: str) -> None:
    gh = world.gh
    gh.set_branch(OWNER, "taxonomy", "main", SHA_TAXONOMY)
    gh.set_content(OWNER, "taxonomy", PATH, taxonomy, ref=SHA_TAXONOMY)
    gh.set_branch(OWNER, "skills", "main", SHA_SKILLS)
    gh.set_content(OWNER, "skills", PATH, skills, ref=SHA_SKILLS)
    gh.add_pull(OWNER, "skills", SKILLS_PR, head_sha="c" * 40, head_ref="add-skill")
    # a PR's own copy of the file never counts: only the default branch's does
    gh.set_content(OWNER, "taxonomy", PATH, "commands: [help]\n", ref=world.remote.head_sha)


async def say(
    world: World, bot: RunningBot, repo: str, command: str, *, answered: bool = True
) -> str:
    """Comment `command` on the repository's PR as a maintainer; the bot's answer ("" for
    a command that starts a job: its result comes later)."""
    number = 7 if repo == "taxonomy" else SKILLS_PR
    before = {c["id"] for c in world.gh.comments(OWNER, repo, number)}
    body = f"@{world.settings.username} {command}"
    seeded = world.gh.add_comment(OWNER, repo, number, body, user_login=MAINTAINER)
    payload: dict[str, Any] = world.payload(
        body,
        repo=repo,
        pr_number=number,
        installation_id=world.gh.installation_id,
        comment_id=seeded["id"],
        login=MAINTAINER,
    )
    payload["repository"]["default_branch"] = "main"
    async with aiohttp.ClientSession() as session:
        status, _ = await post_webhook(session, bot.webhook_url, "issue_comment", payload)
    assert status == 202
    async with asyncio.timeout(60):
        await events_settled(world.settings.redis_url)
    answers = [
        str(c["body"])
        for c in world.gh.comments(OWNER, repo, number)
        if c["id"] not in before and c["user"]["type"] == "Bot"
    ]
    assert len(answers) == int(answered), answers
    return "".join(answers)


def config_checks(world: World, repo: str, sha: str) -> list[dict[str, Any]]:
    runs = world.gh.check_runs(OWNER, repo, head_sha=sha)
    return [r for r in runs if r["name"] == "instruct-lab-bot/config"]


async def test_two_repositories_two_configs_behave_differently(world: World) -> None:
    publish_configs(world, TAXONOMY_CONFIG, SKILLS_CONFIG)
    settings = replace(world.settings, generate_args=())
    async with run_bot(settings) as bot:
        labels = await say(world, bot, "taxonomy", "generate")
        skills_generate = await say(world, bot, "skills", "generate")
        skills_help = await say(world, bot, "skills", "help")
        taxonomy_help = await say(world, bot, "taxonomy", "help")
        cancel = await say(world, bot, "taxonomy", "cancel")
        world.gh.set_labels(OWNER, "taxonomy", 7, ["ready-for-sdg"])
        await say(world, bot, "taxonomy", "generate", answered=False)
        await world.result_comment()
        status = await say(world, bot, "taxonomy", "status")

    assert "ready-for-sdg" in labels  # taxonomy's label, not the admin's (none)
    assert "switched off" in skills_generate and "switched off" in cancel
    assert "generate" not in skills_help and "`@" in skills_help
    assert "instructlab/skill-reviewers" in skills_help  # skills' own team
    assert " generate`" in taxonomy_help and " cancel`" not in taxonomy_help
    (invocation,) = world.record.entries()  # the job ran with taxonomy's defaults
    assert invocation["argv"][-4:] == ["--sdg-scale-factor", "3", "--pipeline", "full"]
    assert f"`{PATH}` at {SHA_TAXONOMY[:7]}" in status and "(valid)" in status
    for repo, sha in (("taxonomy", SHA_TAXONOMY), ("skills", SHA_SKILLS)):
        (check,) = config_checks(world, repo, sha)
        assert check["conclusion"] == "success"
        # read once per commit, at the default branch's head (never at the PR's head)
        reads = [c for c in world.gh.calls if c.path.endswith(PATH) and f"/{repo}/" in c.path]
        assert [c.query.get("ref") for c in reads] == [sha]


async def test_a_broken_config_is_reported_and_stops_no_other_repository(world: World) -> None:
    publish_configs(world, BROKEN_CONFIG, SKILLS_CONFIG)
    async with run_bot(world.settings, workers=0) as bot:
        status = await say(world, bot, "taxonomy", "status")
        taxonomy_help = await say(world, bot, "taxonomy", "help")
        skills_generate = await say(world, bot, "skills", "generate")
        skills_status = await say(world, bot, "skills", "status")

    (check,) = config_checks(world, "taxonomy", SHA_TAXONOMY)
    assert check["conclusion"] == "failure"
    annotations = world.gh.check_run_history(check["id"])[0]["output"]["annotations"]
    assert sorted(a["start_line"] for a in annotations) == [2, 4, 5]
    assert {a["path"] for a in annotations} == {PATH}
    # the broken repository says so and runs on the admin's defaults (every command listed)
    assert "admin defaults" in status and "line 2" in status and "dance" in status
    assert all(f" {c}`" in taxonomy_help for c in ("generate", "precheck", "retry", "cancel"))
    # the other repository keeps its own configuration
    assert "switched off" in skills_generate and "(valid)" in skills_status
    (skills_check,) = config_checks(world, "skills", SHA_SKILLS)
    assert skills_check["conclusion"] == "success"


async def test_github_failing_to_read_the_file_means_admin_defaults_then_a_retry(
    world: World,
) -> None:
    publish_configs(world, TAXONOMY_CONFIG, SKILLS_CONFIG)
    target = f"/repos/{OWNER}/skills/contents/{PATH}"
    failing = world.gh.inject("GET", target, status=403, times=1)
    settings = replace(world.settings, github_max_attempts=1)
    async with run_bot(settings, workers=0) as bot:
        first = await say(world, bot, "skills", "help")
        second = await say(world, bot, "skills", "help")
    assert failing.times == 0  # the injected refusal was served
    assert " generate`" in first  # admin defaults while the file could not be read
    assert " generate`" not in second  # read again on the next command: skills' own
    (check,) = config_checks(world, "skills", SHA_SKILLS)
    assert check["conclusion"] == "success"


def test_the_readme_example_is_valid() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Per-repository configuration", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config, errors = parse_repo_config(example, make_settings())
    assert errors == [] and config.commands and config.teams and config.welcome
    assert team_errors(config, OWNER, example) == []

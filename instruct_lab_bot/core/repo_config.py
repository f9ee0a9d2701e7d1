"""Per-repository configuration (pure): `.github/instruct-lab-bot.yml` on the default branch.

A repository's maintainers tune the bot for their repository within what the admin allows:
required labels, which commands are enabled, which of their teams may run restricted commands,
generate defaults inside admin-set bounds, and the welcome text. The file is checked against
the JSON schema shipped next to this module with the admin's bounds filled in; any error makes
the whole file count as absent (admin defaults apply), with every error kept so the bot can
show them (a failing check run on the default branch, the `status` reply).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from jsonschema.validators import Draft202012Validator
from yaml.nodes import Node

from instruct_lab_bot.core.command_table import COMMAND_TABLE, CommandSpec
from instruct_lab_bot.core.permissions import Policy
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.validation.yaml_reader import (
    Lines,
    Loader,
    YamlRefused,
    load_bounded,
    locate,
)

MAX_CONFIG_BYTES = 16 * 1024
#: Commands a repository cannot switch off: they only read, and say why others are off.
ALWAYS_ENABLED = frozenset({"help", "status"})


@dataclass(frozen=True)
class ConfigError:
    """One problem, at a line of the file (1 when it has no better place)."""

    line: int
    message: str


@dataclass(frozen=True)
class RepoConfig:
    """What one repository set; None fields mean "the admin's default"."""

    required_labels: tuple[str, ...] | None = None
    commands: frozenset[str] | None = None
    teams: tuple[str, ...] | None = None
    pipeline: str | None = None
    instructions_per_seed: int | None = None
    welcome: str | bool | None = None


@dataclass(frozen=True)
class LoadedConfig:
    """The configuration that applies to one repository, and where it came from.

    `sha` is the default branch commit it was read at ("" when no file was read); `errors`
    non-empty means the file was refused and `config` holds the admin's defaults only.
    """

    config: RepoConfig = field(default_factory=RepoConfig)
    path: str = ""
    sha: str = ""
    found: bool = False
    errors: tuple[ConfigError, ...] = ()

    @property
    def broken(self) -> bool:
        return bool(self.errors)


@functools.cache
def schema() -> dict[str, Any]:
    """The shipped JSON schema (also the reference for the README's example)."""
    text = resources.files(__package__).joinpath("repo_config.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse_repo_config(text: str, settings: Settings) -> tuple[RepoConfig, list[ConfigError]]:
    """The file's settings, or the empty config and every error, each at its line."""
    try:
        data = load_bounded(text, max_bytes=MAX_CONFIG_BYTES)
    except YamlRefused as exc:
        return RepoConfig(), [ConfigError(1, f"not readable YAML: {exc}")]
    if data is None:
        return RepoConfig(), []
    validator = _validator(settings.repo_pipelines, settings.repo_max_instructions)
    problems = list(validator.iter_errors(data))
    if not problems:
        return _from_data(data), []
    root = _root(text)
    errors = [ConfigError(_line(root, text, _where(p)), _describe(p)) for p in problems]
    return RepoConfig(), sorted(errors, key=lambda e: (e.line, e.message))


@functools.cache
def _validator(pipelines: tuple[str, ...], most: int) -> Draft202012Validator:
    """The shipped schema with the admin's bounds filled in (one pass finds every error)."""
    bounded = copy.deepcopy(schema())
    generate = bounded["properties"]["generate"]["properties"]
    generate["pipeline"]["enum"] = list(pipelines)
    generate["instructions_per_seed"]["maximum"] = most
    return Draft202012Validator(bounded)


def _where(problem: Any) -> list[Any]:
    """The path to point at: an unexpected key itself, else the value that is wrong."""
    path = list(problem.absolute_path)
    if problem.validator == "additionalProperties" and isinstance(problem.instance, dict):
        known = problem.schema.get("properties", {})
        extra = [k for k in problem.instance if k not in known]
        path += extra[:1]
    return path


def _describe(problem: Any) -> str:
    where = "/".join(str(p) for p in problem.absolute_path) or "(top level)"
    return f"{where}: {str(problem.message)[:300]}"


def _root(text: str) -> Node | None:
    loader = Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _line(root: Node | None, text: str, path: Sequence[Any]) -> int:
    if root is None:
        return 1
    found = locate(root, path)
    node = found.key or found.node
    return Lines(text).line_of(node.start_mark.index) if node is not None else 1


def _from_data(data: dict[str, Any]) -> RepoConfig:
    generate = data.get("generate") or {}
    commands = data.get("commands")
    return RepoConfig(
        required_labels=tuple(data["required_labels"]) if "required_labels" in data else None,
        commands=None if commands is None else frozenset(commands) | ALWAYS_ENABLED,
        teams=tuple(data["teams"]) if "teams" in data else None,
        pipeline=generate.get("pipeline"),
        instructions_per_seed=generate.get("instructions_per_seed"),
        welcome=data.get("welcome"),
    )


def team_errors(config: RepoConfig, owner: str, text: str) -> list[ConfigError]:
    """A repository may only name teams of its own organisation."""
    root = _root(text)
    return [
        ConfigError(_line(root, text, ["teams", i]), f"teams/{i}: {team!r} is not of {owner}")
        for i, team in enumerate(config.teams or ())
        if team.split("/", 1)[0].lower() != owner.lower()
    ]


# -- applying it --------------------------------------------------------------------------


def required_labels(loaded: LoadedConfig, settings: Settings) -> tuple[str, ...]:
    labels = loaded.config.required_labels
    return settings.required_labels if labels is None else labels


def enabled(loaded: LoadedConfig, spec: CommandSpec) -> bool:
    commands = loaded.config.commands
    return commands is None or spec.name in commands


def policy(loaded: LoadedConfig, admin: Policy) -> Policy:
    """The admin's policy with this repository's teams (the role rule stays the admin's)."""
    teams = loaded.config.teams
    if teams is None:
        return admin
    return Policy(admin.min_permission, teams, admin.restricted_commands)


def welcome_text(loaded: LoadedConfig) -> str | None:
    """The repository's own welcome text (None: the default one)."""
    value = loaded.config.welcome
    return value if isinstance(value, str) else None


def welcome_enabled(loaded: LoadedConfig, settings: Settings) -> bool:
    value = loaded.config.welcome
    return settings.welcome if value is None else value is not False


def generate_args(loaded: LoadedConfig) -> tuple[str, ...]:
    """ilab flags the repository chose (they follow the admin's, so they win)."""
    config = loaded.config
    args: list[str] = []
    if config.instructions_per_seed is not None:
        args += ["--sdg-scale-factor", str(config.instructions_per_seed)]
    if config.pipeline is not None:
        args += ["--pipeline", config.pipeline]
    return tuple(args)


def enabled_commands(loaded: LoadedConfig) -> tuple[str, ...]:
    return tuple(s.name for s in COMMAND_TABLE if enabled(loaded, s))

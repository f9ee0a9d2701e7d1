"""Typed, frozen settings read once from the environment (and `.env`) at start-up.

Every problem is collected before failing, so an admin fixes a bad deployment in one pass
instead of one restart per mistake. Secrets are held in `Secret` so that no repr, log line or
error message can print them.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.command_table import DEFAULT_RESTRICTED, KNOWN_COMMANDS
from instruct_lab_bot.core.status_auth import parse_status_auth

PREFIX = "ILAB_BOT_"
T = TypeVar("T")


class SettingsError(Exception):
    """Raised with every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Secret:
    """A string that never shows itself in `repr`, `str` or f-strings."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


@dataclass(frozen=True)
class Settings:
    """Everything the server and workers need; see the README's settings table."""

    github_app_id: str = ""
    github_private_key: Secret = Secret("")
    webhook_secret: Secret = Secret("")
    github_api_url: str = "https://api.github.com"
    github_git_url: str = "https://github.com"
    username: str = "instruct-lab-bot"
    redis_url: str = "redis://localhost:6379/0"
    artifacts_url: str = "file://./var/artifacts"
    s3_endpoint_url: str | None = None
    link_expiry: int = 7 * 24 * 3600
    public_url: str = "http://localhost:8080"
    host: str = "0.0.0.0"  # noqa: S104 - a server in a container listens on all interfaces
    port: int = 8080
    ilab_command: tuple[str, ...] = ("ilab",)
    generate_args: tuple[str, ...] = ()
    work_dir: Path = Path("./var/work")
    job_timeout: float = 2 * 3600.0
    progress_interval: float = 30.0
    log_format: str = "auto"
    github_timeout: float = 30.0
    git_timeout: float = 600.0
    upload_timeout: float = 600.0
    kill_grace: float = 10.0
    max_deliveries: int = 3
    heartbeat_interval: float = 10.0
    lease_timeout: float = 60.0
    shutdown_grace: float = 15 * 60.0
    job_history_ttl: int = 30 * 24 * 3600
    status_auth: Secret = Secret("")  # `bearer:<token>` or `basic:<user>:<password>`
    allowed_teams: tuple[str, ...] = ()
    min_permission: str = "write"
    restricted_commands: tuple[str, ...] = DEFAULT_RESTRICTED
    required_labels: tuple[str, ...] = ()
    repos: frozenset[str] = frozenset()
    precheck_args: tuple[str, ...] = ()
    precheck_concurrency: int = 4
    welcome: bool = True
    github_max_concurrency: int = 8
    github_write_limit: int = 80
    github_retry_deadline: float = 120.0
    github_max_attempts: int = 5
    reconcile_interval: float | None = 600.0
    dispatch_concurrency: int = 16
    validate_max_files: int = 100
    validate_concurrency: int = 4
    validate_timeout: float = 120.0

    @property
    def recovery_bound(self) -> float:
        """Longest a dead worker's job waits before another worker starts it."""
        return self.lease_timeout + self.heartbeat_interval

    def secrets(self) -> tuple[str, ...]:
        """Secret values, for scrubbing subprocess environments and log lines."""
        found = [s.value for s in (self.github_private_key, self.webhook_secret) if s]
        if self.status_auth:  # bearer:<token> or basic:<user>:<password>: the last part
            found.append(self.status_auth.value.rsplit(":", 1)[-1])
        return tuple(found)

    @property
    def signing_key(self) -> bytes:
        """Key for signed artifact links: derived from the webhook secret, never stored."""
        return hashlib.sha256(b"artifact-links\0" + self.webhook_secret.value.encode()).digest()


def _parse_duration(text: str) -> float:
    """Seconds, or a number with a unit: `90`, `30s`, `15m`, `2h`, `7d`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 30s, 15m, 2h, 7d)")
    number, unit = float(match.group(1)), match.group(2) or "s"
    seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def _parse_url(text: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(text)
    if parts.scheme not in schemes or (parts.scheme != "file" and not parts.netloc):
        raise ValueError(f"{text!r} is not a {'/'.join(schemes)} URL")
    return text.rstrip("/")


def _parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError("must be between 0 and 65535")
    return port


def _parse_argv(text: str) -> tuple[str, ...]:
    """Split like a POSIX shell would, but only to build an argv: nothing is ever executed."""
    return tuple(shlex.split(text))


def _parse_username(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?", text):
        raise ValueError(f"{text!r} is not a GitHub login")
    return text.removesuffix("[bot]")


def _no_files(path: str) -> str:
    raise OSError(2, "reading files was not allowed", path)


def parse_settings(
    env: Mapping[str, str],
    *,
    require_github: bool = True,
    read_file: Callable[[str], str] = _no_files,
) -> Settings:
    """Build `Settings` from a mapping of variables, listing every problem at once.

    Pure: the caller supplies the variables and how to read a named file (the App's key file);
    `cli.load_settings` passes the process environment, `.env` and the file system.
    `require_github=False` is for commands that never talk to GitHub (e.g. `replay`), which
    only need the webhook secret.
    """
    problems: list[str] = []
    values: dict[str, object] = {}
    for name, attr, parse in _FIELDS:
        raw = env.get(PREFIX + name, "").strip()
        if not raw:
            continue
        try:
            values[attr] = parse(raw)
        except ValueError as exc:
            problems.append(f"{PREFIX}{name}: {exc}")
    _check_lease(values, problems)
    secret = env.get(PREFIX + "WEBHOOK_SECRET", "")
    if secret:
        values["webhook_secret"] = Secret(secret)
    else:
        problems.append(f"{PREFIX}WEBHOOK_SECRET: required (the GitHub App's webhook secret)")

    if require_github:
        _load_github_app(env, values, problems, read_file)

    if problems:
        raise SettingsError(problems)
    return Settings(**values)  # type: ignore[arg-type]


def _load_github_app(
    env: Mapping[str, str],
    values: dict[str, object],
    problems: list[str],
    read_file: Callable[[str], str],
) -> None:
    app_id = env.get(PREFIX + "GITHUB_APP_ID", "").strip()
    if not app_id:
        problems.append(f"{PREFIX}GITHUB_APP_ID: required (the GitHub App's numeric id)")
    elif not app_id.isdigit():
        problems.append(f"{PREFIX}GITHUB_APP_ID: must be a number")
    else:
        values["github_app_id"] = app_id

    pem = env.get(PREFIX + "GITHUB_PRIVATE_KEY", "")
    pem_file = env.get(PREFIX + "GITHUB_PRIVATE_KEY_FILE", "").strip()
    if pem and pem_file:
        problems.append(
            f"{PREFIX}GITHUB_PRIVATE_KEY and {PREFIX}GITHUB_PRIVATE_KEY_FILE: set only one"
        )
        return
    if pem_file:
        try:
            pem = read_file(pem_file)
        except OSError as exc:
            problems.append(
                f"{PREFIX}GITHUB_PRIVATE_KEY_FILE: cannot read {pem_file}: {exc.strerror}"
            )
            return
    if not pem:
        problems.append(
            f"{PREFIX}GITHUB_PRIVATE_KEY or {PREFIX}GITHUB_PRIVATE_KEY_FILE: required (PEM key)"
        )
        return
    pem = pem.replace("\\n", "\n").strip() + "\n"  # one-line PEMs from env files
    if "PRIVATE KEY-----" not in pem:
        problems.append(f"{PREFIX}GITHUB_PRIVATE_KEY: not a PEM private key")
        return
    values["github_private_key"] = Secret(pem)


def _parse_optional_duration(text: str) -> float | None:
    return None if text.lower() in ("off", "none", "0") else _parse_duration(text)


def _parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_teams(text: str) -> tuple[str, ...]:
    teams = _parse_list(text)
    for team in teams:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", team):
            raise ValueError(f"{team!r} is not an org/team slug")
    return teams


ROLES = ("none", "read", "triage", "write", "maintain", "admin")


def _parse_permission(text: str) -> str:
    if text not in ROLES:
        raise ValueError(f"must be one of {', '.join(ROLES)}")
    return text


def _parse_commands(text: str) -> tuple[str, ...]:
    commands = tuple(c.lower() for c in _parse_list(text))
    unknown = [c for c in commands if c not in KNOWN_COMMANDS]
    if unknown:
        raise ValueError(f"unknown commands {', '.join(unknown)}")
    return commands


def _parse_repos(text: str) -> frozenset[str]:
    repos = _parse_list(text)
    for repo in repos:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}", repo):
            raise ValueError(f"{repo!r} is not owner/repo")
    return frozenset(r.lower() for r in repos)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _parse_positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def _parse_nonempty_argv(text: str) -> tuple[str, ...]:
    argv = _parse_argv(text)
    if not argv:
        raise ValueError("must name a command")
    return argv


def _parse_status_auth(text: str) -> Secret:
    """Validated by the status page's own parser; its errors never quote the value."""
    parse_status_auth(text)
    return Secret(text)


def _parse_log_format(text: str) -> str:
    if text not in ("auto", "json", "console"):
        raise ValueError("must be auto, json or console")
    return text


def _parse_artifacts_url(text: str) -> str:
    parse_artifacts_url(text)
    return text


def _check_lease(values: Mapping[str, object], problems: list[str]) -> None:
    heartbeat = float(values.get("heartbeat_interval", Settings.heartbeat_interval))  # type: ignore[arg-type]
    lease = float(values.get("lease_timeout", Settings.lease_timeout))  # type: ignore[arg-type]
    if lease < 2 * heartbeat:
        problems.append(
            f"{PREFIX}LEASE_TIMEOUT: must be at least twice {PREFIX}HEARTBEAT_INTERVAL "
            "(or a live worker's job would be taken over)"
        )


# Each setting: its variable (after ILAB_BOT_), the Settings field, and its parser.
_FIELDS: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("GITHUB_API_URL", "github_api_url", lambda v: _parse_url(v, ("http", "https"))),
    ("GITHUB_GIT_URL", "github_git_url", lambda v: _parse_url(v, ("http", "https", "file"))),
    ("USERNAME", "username", _parse_username),
    ("REDIS_URL", "redis_url", lambda v: _parse_url(v, ("redis", "rediss", "unix"))),
    ("ARTIFACTS_URL", "artifacts_url", _parse_artifacts_url),
    ("S3_ENDPOINT_URL", "s3_endpoint_url", lambda v: _parse_url(v, ("http", "https"))),
    ("LINK_EXPIRY", "link_expiry", lambda v: int(_parse_duration(v))),
    ("PUBLIC_URL", "public_url", lambda v: _parse_url(v, ("http", "https"))),
    ("HOST", "host", str),
    ("PORT", "port", _parse_port),
    ("ILAB_COMMAND", "ilab_command", _parse_nonempty_argv),
    ("GENERATE_ARGS", "generate_args", _parse_argv),
    ("WORK_DIR", "work_dir", Path),
    ("JOB_TIMEOUT", "job_timeout", _parse_duration),
    ("PROGRESS_INTERVAL", "progress_interval", _parse_duration),
    ("LOG_FORMAT", "log_format", _parse_log_format),
    ("GITHUB_TIMEOUT", "github_timeout", _parse_duration),
    ("GIT_TIMEOUT", "git_timeout", _parse_duration),
    ("UPLOAD_TIMEOUT", "upload_timeout", _parse_duration),
    ("KILL_GRACE", "kill_grace", _parse_duration),
    ("MAX_DELIVERIES", "max_deliveries", _parse_positive_int),
    ("HEARTBEAT_INTERVAL", "heartbeat_interval", _parse_duration),
    ("LEASE_TIMEOUT", "lease_timeout", _parse_duration),
    ("SHUTDOWN_GRACE", "shutdown_grace", _parse_duration),
    ("JOB_HISTORY_TTL", "job_history_ttl", lambda v: int(_parse_duration(v))),
    ("STATUS_AUTH", "status_auth", _parse_status_auth),
    ("ALLOWED_TEAMS", "allowed_teams", _parse_teams),
    ("MIN_PERMISSION", "min_permission", _parse_permission),
    ("RESTRICTED_COMMANDS", "restricted_commands", _parse_commands),
    ("REQUIRED_LABELS", "required_labels", _parse_list),
    ("REPOS", "repos", _parse_repos),
    ("PRECHECK_ARGS", "precheck_args", _parse_argv),
    ("PRECHECK_CONCURRENCY", "precheck_concurrency", _parse_positive_int),
    ("WELCOME", "welcome", _parse_bool),
    ("GITHUB_MAX_CONCURRENCY", "github_max_concurrency", _parse_positive_int),
    ("GITHUB_WRITES_PER_MINUTE", "github_write_limit", _parse_positive_int),
    ("GITHUB_RETRY_DEADLINE", "github_retry_deadline", _parse_duration),
    ("GITHUB_MAX_ATTEMPTS", "github_max_attempts", _parse_positive_int),
    ("RECONCILE_INTERVAL", "reconcile_interval", _parse_optional_duration),
    ("DISPATCH_CONCURRENCY", "dispatch_concurrency", _parse_positive_int),
    ("VALIDATE_MAX_FILES", "validate_max_files", _parse_positive_int),
    ("VALIDATE_CONCURRENCY", "validate_concurrency", _parse_positive_int),
    ("VALIDATE_TIMEOUT", "validate_timeout", _parse_duration),
)

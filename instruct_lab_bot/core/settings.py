"""Typed, frozen settings read once from the environment (and `.env`) at start-up.

Every problem is collected before failing, so an admin fixes a bad deployment in one pass
instead of one restart per mistake. Secrets are held in `Secret` so that no repr, log line or
error message can print them.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.command_table import DEFAULT_RESTRICTED, KNOWN_COMMANDS
from instruct_lab_bot.core.reply_limits import ReplyLimits
from instruct_lab_bot.core.sandbox import ResourceLimits, parse_count, parse_env_names, parse_size
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
    precheck_deadline: float = 30 * 60.0
    knowledge_hosts: tuple[str, ...] = ("github.com",)
    validation_max_file_bytes: int = 256 * 1024
    welcome: bool = True
    github_max_concurrency: int = 8
    github_write_limit: int = 80
    github_retry_deadline: float = 120.0
    github_max_attempts: int = 5
    reconcile_interval: float | None = 600.0
    link_signing_key: Secret = Secret("")  # hex or base64 of >= 32 bytes; "" = shared via Redis
    log_limit: int = 20 * 1024 * 1024  # bytes of `ilab.log` kept (head and tail)
    s3_secret_key: Secret = Secret("")  # AWS_SECRET_ACCESS_KEY, known only to be redacted
    reply_limit_per_user: int = ReplyLimits.per_user
    reply_limit_per_pr: int = ReplyLimits.per_pull_request
    reply_limit_window: float = ReplyLimits.window
    # How `ilab` runs (core/sandbox.py): bubblewrap or, only when chosen, unsandboxed.
    github_private_key_file: str = ""  # masked in the sandbox
    sandbox: str = "bwrap"
    sandbox_network: str = "none"
    sandbox_writable: tuple[Path, ...] = ()
    sandbox_hide: tuple[Path, ...] = ()
    ilab_env: tuple[str, ...] = ()
    ilab_memory_limit: int | None = ResourceLimits.memory
    ilab_max_processes: int | None = ResourceLimits.processes
    ilab_max_file_size: int | None = ResourceLimits.file_size

    @property
    def recovery_bound(self) -> float:
        """Longest a dead worker's job waits before another worker starts it."""
        return self.lease_timeout + self.heartbeat_interval

    @property
    def reply_limits(self) -> ReplyLimits:
        """How many refusals, help and unknown-command replies one person or PR gets."""
        return ReplyLimits(
            self.reply_limit_per_user, self.reply_limit_per_pr, self.reply_limit_window
        )

    def secrets(self) -> tuple[str, ...]:
        """Every configured secret value, for scrubbing subprocess environments and any text
        that leaves the process (the one `Redactor` is built from these)."""
        found = [
            s.value
            for s in (
                self.github_private_key,
                self.webhook_secret,
                self.link_signing_key,
                self.s3_secret_key,
            )
            if s
        ]
        if self.status_auth:  # bearer:<token> or basic:<user>:<password>: the last part
            found.append(self.status_auth.value.rsplit(":", 1)[-1])
        password = urlsplit(self.redis_url).password
        if password:
            found.append(password)
        return tuple(found)


MIN_WEBHOOK_SECRET = 32
MIN_LINK_KEY_BYTES = 32


def decode_signing_key(text: str) -> bytes:
    """A link signing key: hex or base64 of at least 32 bytes. Errors never quote the value."""
    text = text.strip()
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        raw = bytes.fromhex(text)
    else:
        standard = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
        try:
            raw = base64.b64decode(standard, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(
                "must be hex or base64 (e.g. the output of `openssl rand -hex 32`)"
            ) from None
    if len(raw) < MIN_LINK_KEY_BYTES:
        raise ValueError(f"must hold at least {MIN_LINK_KEY_BYTES} random bytes")
    return raw


def _parse_signing_key(text: str) -> Secret:
    decode_signing_key(text)
    return Secret(text.strip())


def _parse_size(text: str) -> int:
    """Bytes, or a number with a unit: `65536`, `512k`, `20M`, `1G`."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not match:
        raise ValueError("not a size (use e.g. 20M, 512k or a number of bytes)")
    unit: int = 1024 ** " kmg".index(match.group(2).lower() or " ")
    size = int(match.group(1)) * unit
    if size < 64 * 1024:
        raise ValueError("must be at least 64k")
    return size


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
    _load_webhook_secret(env, values, problems)
    s3_secret = env.get("AWS_SECRET_ACCESS_KEY", "")
    if s3_secret:
        values["s3_secret_key"] = Secret(s3_secret)

    if require_github:
        _load_github_app(env, values, problems, read_file)

    if problems:
        raise SettingsError(problems)
    return Settings(**values)  # type: ignore[arg-type]


def _load_webhook_secret(
    env: Mapping[str, str], values: dict[str, object], problems: list[str]
) -> None:
    secret = env.get(PREFIX + "WEBHOOK_SECRET", "")
    if not secret:
        problems.append(f"{PREFIX}WEBHOOK_SECRET: required (the GitHub App's webhook secret)")
    elif len(secret) < MIN_WEBHOOK_SECRET:
        problems.append(
            f"{PREFIX}WEBHOOK_SECRET: must be at least {MIN_WEBHOOK_SECRET} characters "
            "(e.g. `openssl rand -hex 32`; a short one can be guessed offline)"
        )
    else:
        values["webhook_secret"] = Secret(secret)


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
        values["github_private_key_file"] = pem_file
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


def _parse_hosts(text: str) -> tuple[str, ...]:
    hosts = tuple(h.lower() for h in _parse_list(text))
    for host in hosts:
        if not re.fullmatch(
            r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", host
        ):
            raise ValueError(f"{host!r} is not a host name")
    return hosts


def _parse_file_bytes(text: str) -> int:
    number = int(text)
    if not 1024 <= number <= 1024 * 1024:  # GitHub's contents API sends content up to 1 MB
        raise ValueError("must be between 1024 and 1048576 bytes")
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


def _parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _parse_paths(text: str) -> tuple[Path, ...]:
    paths = tuple(Path(item) for item in _parse_list(text))
    for path in paths:
        if not path.is_absolute():
            raise ValueError(f"{str(path)!r} is not an absolute path")
    return paths


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
    ("PRECHECK_DEADLINE", "precheck_deadline", _parse_duration),
    ("KNOWLEDGE_HOSTS", "knowledge_hosts", _parse_hosts),
    ("VALIDATION_MAX_FILE_BYTES", "validation_max_file_bytes", _parse_file_bytes),
    ("WELCOME", "welcome", _parse_bool),
    ("GITHUB_MAX_CONCURRENCY", "github_max_concurrency", _parse_positive_int),
    ("GITHUB_WRITES_PER_MINUTE", "github_write_limit", _parse_positive_int),
    ("GITHUB_RETRY_DEADLINE", "github_retry_deadline", _parse_duration),
    ("GITHUB_MAX_ATTEMPTS", "github_max_attempts", _parse_positive_int),
    ("RECONCILE_INTERVAL", "reconcile_interval", _parse_optional_duration),
    ("LINK_SIGNING_KEY", "link_signing_key", _parse_signing_key),
    ("LOG_LIMIT", "log_limit", _parse_size),
    ("REPLY_LIMIT_PER_USER", "reply_limit_per_user", _parse_positive_int),
    ("REPLY_LIMIT_PER_PR", "reply_limit_per_pr", _parse_positive_int),
    ("REPLY_LIMIT_WINDOW", "reply_limit_window", _parse_duration),
    ("SANDBOX", "sandbox", _parse_choice("bwrap", "off")),
    ("SANDBOX_NETWORK", "sandbox_network", _parse_choice("none", "host")),
    ("SANDBOX_WRITABLE", "sandbox_writable", _parse_paths),
    ("SANDBOX_HIDE", "sandbox_hide", _parse_paths),
    ("ILAB_ENV", "ilab_env", parse_env_names),
    ("ILAB_MEMORY_LIMIT", "ilab_memory_limit", parse_size),
    ("ILAB_MAX_PROCESSES", "ilab_max_processes", parse_count),
    ("ILAB_MAX_FILE_SIZE", "ilab_max_file_size", parse_size),
)

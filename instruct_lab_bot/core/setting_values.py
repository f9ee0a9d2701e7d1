"""Parsers of single ILAB_BOT_* values: each takes the text and returns the typed value or
raises ValueError with a message that names the problem and never echoes a secret.

`core.settings` holds the table that says which variable each parser reads."""

from __future__ import annotations

import base64
import binascii
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from instruct_lab_bot.core.artifacts import parse_artifacts_url
from instruct_lab_bot.core.command_table import KNOWN_COMMANDS
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.redis_target import SINGLE_SCHEMES, parse_redis_url
from instruct_lab_bot.core.status_auth import parse_status_auth


@dataclass(frozen=True)
class Secret:
    """A string that never shows itself in `repr`, `str` or f-strings."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self.value)


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


def parse_signing_key(text: str) -> Secret:
    decode_signing_key(text)
    return Secret(text.strip())


def parse_size_text(text: str) -> int:
    """Bytes, or a number with a unit: `65536`, `512k`, `20M`, `1G`."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not match:
        raise ValueError("not a size (use e.g. 20M, 512k or a number of bytes)")
    unit: int = 1024 ** " kmg".index(match.group(2).lower() or " ")
    size = int(match.group(1)) * unit
    if size < 64 * 1024:
        raise ValueError("must be at least 64k")
    return size


def parse_duration(text: str) -> float:
    """Seconds, or a number with a unit: `90`, `30s`, `15m`, `2h`, `7d`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 30s, 15m, 2h, 7d)")
    number, unit = float(match.group(1)), match.group(2) or "s"
    seconds = number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def parse_url(text: str, schemes: tuple[str, ...]) -> str:
    """A URL of one of `schemes`, with a host (except `file:`) and a numeric port if any.
    Errors describe the URL without its userinfo: a Redis or proxy password never shows."""
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ValueError(f"{without_credentials(text)!r} is not a valid URL") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            f"{without_credentials(text)!r} has an invalid port (a number up to 65535)"
        ) from None
    wanted = "/".join(schemes)
    if parts.scheme not in schemes:
        raise ValueError(f"{without_credentials(text)!r} is not a {wanted} URL")
    if parts.scheme not in ("file", "unix") and not parts.hostname:
        raise ValueError(f"{without_credentials(text)!r} has no host (a {wanted} URL needs one)")
    if port == 0:
        raise ValueError(f"{without_credentials(text)!r} has port 0")
    return text.rstrip("/")


def without_credentials(text: str) -> str:
    """`text` with any `user:password@` part of a URL replaced by `***@`."""
    return Redactor().redact(text)


def parse_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError("must be between 0 and 65535")
    return port


def parse_argv(text: str) -> tuple[str, ...]:
    """Split like a POSIX shell would, but only to build an argv: nothing is ever executed."""
    return tuple(shlex.split(text))


def parse_username(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?", text):
        raise ValueError(f"{text!r} is not a GitHub login")
    return text.removesuffix("[bot]")


def parse_usernames(text: str) -> tuple[str, ...]:
    """Comma-separated logins (the bot's former names); "none" for no alias."""
    if text.strip().lower() == "none":
        return ()
    return tuple(parse_username(part.strip()) for part in text.split(",") if part.strip())


def scrub(message: str, raw: str) -> str:
    """A parser's error with any URL credentials of the value blanked out, whatever the
    parser quoted (defence in depth: the parsers themselves avoid quoting them)."""
    secrets = [part for part in re.split(r"[@/:\s]+", userinfo(raw)) if part]
    return Redactor(secrets).redact(message)


def userinfo(raw: str) -> str:
    """Everything between `scheme://` and the last `@` before the path, if any."""
    match = re.match(r"[^:/]*://([^/?#]*)@", raw)
    return match.group(1) if match else ""


def parse_optional_duration(text: str) -> float | None:
    return None if text.lower() in ("off", "none", "0") else parse_duration(text)


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_teams(text: str) -> tuple[str, ...]:
    teams = parse_list(text)
    for team in teams:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}", team):
            raise ValueError(f"{team!r} is not an org/team slug")
    return teams


ROLES = ("none", "read", "triage", "write", "maintain", "admin")


def parse_permission(text: str) -> str:
    if text not in ROLES:
        raise ValueError(f"must be one of {', '.join(ROLES)}")
    return text


def parse_commands(text: str) -> tuple[str, ...]:
    commands = tuple(c.lower() for c in parse_list(text))
    unknown = [c for c in commands if c not in KNOWN_COMMANDS]
    if unknown:
        raise ValueError(f"unknown commands {', '.join(unknown)}")
    return commands


def parse_repo_path(text: str) -> str:
    """A file path inside a repository: relative, "/"-separated, no "." or ".." parts."""
    parts = text.split("/")
    if text.startswith("/") or any(p in ("", ".", "..") for p in parts) or len(text) > 255:
        raise ValueError(f"{text!r} is not a relative path inside the repository")
    return text


def parse_repos(text: str) -> frozenset[str]:
    repos = parse_list(text)
    for repo in repos:
        if not re.fullmatch(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}", repo):
            raise ValueError(f"{repo!r} is not owner/repo")
    return frozenset(r.lower() for r in repos)


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def parse_positive_float(text: str) -> float:
    """A finite number above zero (a learning rate: `2e-5`)."""
    number = float(text)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("must be a number greater than zero")
    return number


def parse_positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def parse_hosts(text: str) -> tuple[str, ...]:
    hosts = tuple(h.lower() for h in parse_list(text))
    for host in hosts:
        if not re.fullmatch(
            r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", host
        ):
            raise ValueError(f"{host!r} is not a host name")
    return hosts


def parse_file_bytes(text: str) -> int:
    number = int(text)
    if not 1024 <= number <= 1024 * 1024:  # GitHub's contents API sends content up to 1 MB
        raise ValueError("must be between 1024 and 1048576 bytes")
    return number


def parse_nonempty_argv(text: str) -> tuple[str, ...]:
    argv = parse_argv(text)
    if not argv:
        raise ValueError("must name a command")
    return argv


def parse_status_auth_secret(text: str) -> Secret:
    """Validated by the status page's own parser; its errors never quote the value."""
    parse_status_auth(text)
    return Secret(text)


def parse_log_format(text: str) -> str:
    if text not in ("auto", "json", "console"):
        raise ValueError("must be auto, json or console")
    return text


def parse_artifacts_setting(text: str) -> str:
    parse_artifacts_url(text)
    return text


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def parse_path(text: str) -> Path:
    path = Path(text.strip())
    if not path.is_absolute():
        raise ValueError(f"{text.strip()!r} is not an absolute path")
    return path


def parse_paths(text: str) -> tuple[Path, ...]:
    paths = tuple(Path(item) for item in parse_list(text))
    for path in paths:
        if not path.is_absolute():
            raise ValueError(f"{str(path)!r} is not an absolute path")
    return paths


def parse_redis_setting(text: str) -> str:
    """`ILAB_BOT_REDIS_URL`: one server (redis-py's URL forms) or a Sentinel or Cluster URL
    (`core.redis_target`)."""
    if parse_redis_url(text).kind == "single":
        return parse_url(text, SINGLE_SCHEMES)
    return text.strip()


def parse_count_or_zero(text: str) -> int:
    """A whole number, 0 allowed (0 usually means "off")."""
    if not text.strip().isdigit():
        raise ValueError("must be a whole number (0 or more)")
    return int(text)


def parse_word(text: str) -> str:
    """One argv value (a model name or path, a pipeline): no spaces or control characters,
    and not starting with `-`, which a reader could take for a flag."""
    if not text or text.startswith("-") or any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError(f"{text!r} must be one word, not starting with '-'")
    return text


def parse_dns_label(text: str) -> str:
    """A Kubernetes name (namespace, ServingRuntime, service account): a DNS-1123 label."""
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text):
        raise ValueError(f"{text!r} must be a Kubernetes name: a-z, 0-9 and '-', at most 63")
    return text

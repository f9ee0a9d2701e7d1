"""The ilab runner's wire format and its checks (pure): `ILAB_BOT_SANDBOX=runner`.

Why a runner: on Kubernetes a restricted pod cannot create the user namespaces bubblewrap
needs, so `ilab` runs in a container of its own in the worker pod, one that holds no secrets.
The worker asks it over a Unix socket in a shared `emptyDir`: one JSON object per line, one
request per connection. The runner trusts nothing in a request: the program must be its own
configured ilab command, every path must lie in its jobs folder, only allow-listed variables
pass, and the limits are its own.

Requests: `{"op": "version"}` or `{"op": "run", "argv": [...], "cwd": ..., "env": {...},
"timeout": s, "kill_grace": s, "max_line": bytes}`, then optionally `{"op": "cancel"}`.
Answers: `{"type": "lines", "stream": ..., "lines": [...]}` (the lines of one pipe read, in
messages of at most `BATCH_CHARS` characters; issue 17: one JSON message per line cost more
than the line) or `{"type": "line", "stream": ..., "line": ...}`, then one `result`,
`refused` or `error` (the program could not start) object. Closing the connection cancels
the run.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from instruct_lab_bot.core.sandbox import FIXED_ENV

__all__ = [
    "BATCH_CHARS",
    "MAX_MESSAGE",
    "Refused",
    "RunRequest",
    "decode",
    "encode",
    "env_name_allowed",
    "line_batches",
    "parse_run_request",
    "path_arguments",
    "secrets_in_environment",
]

#: Longest message either side accepts (a request's argv and env, or one output line, which
#: the runner cuts at `max_line` bytes before JSON escaping).
MAX_MESSAGE = 1 << 20
MAX_LINE = 64 * 1024
#: Characters of output lines per `lines` message: JSON-escaped (at most 6 bytes a character)
#: it stays within MAX_MESSAGE.
BATCH_CHARS = 128 * 1024
MAX_ARGS = 512
MAX_TIMEOUT = 7 * 86400.0
MAX_KILL_GRACE = 600.0
#: Variables every run may set besides the runner's allow-list (`HOME` must be in the jobs
#: folder; the runner sets `PATH` itself).
BASE_ENV = frozenset({*FIXED_ENV, "HOME", "TMPDIR", "COLUMNS"})  # COLUMNS: chat, unwrapped
_SECRET_NAMES = frozenset(
    {
        "ILAB_BOT_WEBHOOK_SECRET",
        "ILAB_BOT_LINK_SIGNING_KEY",
        "ILAB_BOT_STATUS_AUTH",
        "ILAB_BOT_REDIS_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }
)


class Refused(ValueError):
    """A request the runner will not run; the message says why (it names no secret)."""


@dataclass(frozen=True)
class RunRequest:
    """A checked `run` request: paths still to be resolved against the file system."""

    argv: tuple[str, ...]
    cwd: str
    env: Mapping[str, str]
    timeout: float
    kill_grace: float
    max_line: int


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def line_batches(lines: list[str], budget: int = BATCH_CHARS) -> list[list[str]]:
    """`lines` in order, in groups of at most `budget` characters (a longer line alone)."""
    if sum(map(len, lines)) + len(lines) <= budget:
        return [lines]
    groups: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if groups[-1] and size + len(line) + 1 > budget:
            groups.append([])
            size = 0
        groups[-1].append(line)
        size += len(line) + 1
    return groups


def decode(line: bytes) -> dict[str, Any]:
    """One message; Refused unless it is a JSON object."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused("not a JSON message") from None
    if not isinstance(message, dict):
        raise Refused("not a JSON object")
    return message


def secrets_in_environment(environ: Mapping[str, str]) -> list[str]:
    """Names of the bot's secrets found in `environ` (the runner refuses to start with any):
    the GitHub App's settings, the webhook and link keys, status credentials, AWS secrets and
    a Redis URL carrying a password."""
    found = []
    for name, value in environ.items():
        if (
            name.startswith("ILAB_BOT_GITHUB_")
            or name in _SECRET_NAMES
            or ("REDIS" in name and "://" in value and _has_password(value))
        ):
            found.append(name)
    return sorted(found)


def _has_password(url: str) -> bool:
    try:
        return bool(urlsplit(url.strip()).password)
    except ValueError:
        return True  # unparsable: assume the worst


def env_name_allowed(name: str, allow: Sequence[str]) -> bool:
    """`name` is a base variable or on the allow-list (`NAME` or a `PREFIX*`); never the bot's
    own `ILAB_BOT_*` settings."""
    if name.startswith("ILAB_BOT_"):
        return False
    if name in BASE_ENV or name in allow:
        return True
    return any(item.endswith("*") and name.startswith(item[:-1]) for item in allow)


def parse_run_request(message: Mapping[str, Any], allow_env: Sequence[str]) -> RunRequest:
    """Check the shape and bounds of a `run` request; Refused names what is wrong."""
    argv = message.get("argv")
    if not isinstance(argv, list) or not argv or len(argv) > MAX_ARGS:
        raise Refused(f"argv must be a list of 1 to {MAX_ARGS} strings")
    if not all(isinstance(arg, str) and "\0" not in arg for arg in argv):
        raise Refused("argv must hold strings without NUL")
    cwd = message.get("cwd")
    if not isinstance(cwd, str) or not posixpath.isabs(cwd):
        raise Refused("cwd must be an absolute path")
    env = message.get("env")
    if not isinstance(env, dict):
        raise Refused("env must be an object")
    for name, value in env.items():
        if not isinstance(value, str) or "\0" in value or "\0" in name:
            raise Refused(f"env {name!r} must be a string without NUL")
        if not env_name_allowed(name, allow_env):
            raise Refused(f"env {name!r} is not on the runner's allow-list")
    return RunRequest(
        argv=tuple(argv),
        cwd=cwd,
        env=dict(env),
        timeout=_number(message, "timeout", 0.0, MAX_TIMEOUT),
        kill_grace=_number(message, "kill_grace", 0.0, MAX_KILL_GRACE),
        max_line=int(_number(message, "max_line", 4, MAX_LINE)),
    )


def _number(message: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = message.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise Refused(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def path_arguments(args: Sequence[str]) -> list[str]:
    """The arguments that name a path (the runner resolves each inside its jobs folder).

    An argument (or the value of `--option=value`) is a path when it is absolute, starts with
    `~`, `./` or `../`, is `.`/`..`, or has a `..` component anywhere. Everything after a
    literal `--` is data for the program (a chat question), not an option or a path.
    """
    found = []
    for arg in args:
        if arg == "--":
            break
        values = [arg]
        if arg.startswith("-") and "=" in arg:
            values.append(arg.split("=", 1)[1])
        found += [value for value in values if _looks_like_path(value)]
    return found


def _looks_like_path(value: str) -> bool:
    if value.startswith(("/", "~", "./", "../")) or value in (".", ".."):
        return True
    return ".." in value.split("/") and "/" in value

"""How `ilab` runs: the bubblewrap argv, its resource limits and its allow-list environment.

Pure: the adapter (`adapters.sandbox`) finds the programs and the paths that exist, this
module only turns them into an argv and an environment. Why: `ilab` runs on whatever a
stranger puts in a pull request, on a machine that holds the App's key, the webhook secret and
the Redis/S3 credentials. Inside the sandbox it sees a read-only root, a private `/tmp`, a
minimal `/dev` (plus the GPUs), its own `/proc` (so neither the bot's processes nor their
environments), no network unless allowed, only its job's workspace writable and the bot's
secret paths masked; nothing of the bot's environment is inherited unless listed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FIXED_ENV",
    "ResourceLimits",
    "SandboxPlan",
    "child_env",
    "limits_argv",
    "parse_count",
    "parse_env_names",
    "parse_size",
    "sandbox_argv",
]

#: Always set for `ilab`, whatever the allow-list says (HOME and PATH are added per run).
FIXED_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "GIT_ALLOW_PROTOCOL": "https",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PYTHONUNBUFFERED": "1",
}
#: Names that never pass to `ilab`, even when listed: the bot's own settings hold its secrets.
FORBIDDEN_PREFIX = "ILAB_BOT_"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")
_SIZE = re.compile(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class ResourceLimits:
    """rlimits of the sandboxed process tree; None leaves one unlimited.

    `memory` is RLIMIT_DATA (private writable memory: heap and anonymous maps), not RLIMIT_AS,
    because CUDA reserves terabytes of address space it never touches. `processes` is
    RLIMIT_NPROC (threads count; the kernel does not apply it to root). `file_size` is
    RLIMIT_FSIZE (a bigger write gets SIGXFSZ).
    """

    memory: int | None = 64 << 30
    processes: int | None = 8192
    file_size: int | None = 32 << 30


@dataclass(frozen=True)
class SandboxPlan:
    """What one sandboxed run may see: everything here is an absolute path that exists."""

    bwrap: str
    workspace: Path
    cwd: Path
    hide_dirs: tuple[Path, ...] = ()
    hide_files: tuple[Path, ...] = ()
    readable: tuple[Path, ...] = ()  # under /tmp, shown again (read-only) over the private one
    writable: tuple[Path, ...] = ()
    devices: tuple[Path, ...] = ()
    network: bool = False


def sandbox_argv(plan: SandboxPlan, argv: Sequence[str]) -> list[str]:
    """`bwrap … -- argv`: the mounts go in order, so later ones win over earlier ones.

    The read-only root comes first, then the private `/tmp`, what `ilab` needs from the real
    `/tmp` (read-only), the writable extras, the masks over the bot's secret folders and
    files, and last this job's workspace (which may lie inside a masked folder such as the
    work dir).
    """
    out = [
        plan.bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *(() if plan.network else ("--unshare-net",)),
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",  # noqa: S108 - a private, empty /tmp inside the sandbox
    ]
    for device in plan.devices:
        out += ["--dev-bind", str(device), str(device)]
    for path in plan.readable:
        out += ["--ro-bind", str(path), str(path)]
    for path in plan.writable:
        out += ["--bind", str(path), str(path)]
    for path in plan.hide_dirs:
        out += ["--tmpfs", str(path)]
    for path in plan.hide_files:
        out += ["--ro-bind", "/dev/null", str(path)]
    out += ["--bind", str(plan.workspace), str(plan.workspace), "--chdir", str(plan.cwd)]
    return [*out, "--", *argv]


def limits_argv(prlimit: str, limits: ResourceLimits) -> list[str]:
    """`prlimit --data=… --nproc=… --fsize=… --core=0 --` (util-linux), to put before argv."""
    out = [prlimit]
    for option, value in (
        ("data", limits.memory),
        ("nproc", limits.processes),
        ("fsize", limits.file_size),
    ):
        if value is not None:
            out.append(f"--{option}={value}")
    return [*out, "--core=0", "--"]


def child_env(
    environ: Mapping[str, str], allow: Sequence[str], *, home: Path, path: str
) -> dict[str, str]:
    """Only the listed variables of `environ`, then the fixed safe values.

    A name ending in `*` allows every variable with that prefix. `ILAB_BOT_*` never passes.
    """
    exact = {name for name in allow if not name.endswith("*")}
    prefixes = tuple(name[:-1] for name in allow if name.endswith("*"))
    env = {
        name: value
        for name, value in environ.items()
        if (name in exact or (prefixes and name.startswith(prefixes)))
        and not name.startswith(FORBIDDEN_PREFIX)
    }
    env.update(FIXED_ENV)
    env.update({"HOME": str(home), "PATH": path, "TMPDIR": "/tmp"})  # noqa: S108
    return env


def parse_env_names(text: str) -> tuple[str, ...]:
    """`HF_HOME, OPENAI_API_KEY, ILAB_STANDIN_*`: variable names, a trailing `*` a prefix."""
    names = tuple(item.strip() for item in text.split(",") if item.strip())
    for name in names:
        if not _NAME.fullmatch(name) or name == "*":
            raise ValueError(f"{name!r} is not a variable name (or a prefix ending in *)")
        if name.startswith(FORBIDDEN_PREFIX):
            raise ValueError(f"{name!r}: the bot's own {FORBIDDEN_PREFIX}* settings never pass")
    return names


def parse_size(text: str) -> int | None:
    """`64g`, `512m`, `8192` (bytes; k/m/g/t are powers of 1024), or `off` for no limit."""
    if text.strip().lower() in ("off", "none", "unlimited"):
        return None
    match = _SIZE.fullmatch(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"not a size: {text!r} (use e.g. 64g, 512m, or off)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def parse_count(text: str) -> int | None:
    """A positive number, or `off` for no limit."""
    if text.strip().lower() in ("off", "none", "unlimited"):
        return None
    number = int(text)
    if number < 1:
        raise ValueError("must be at least 1 (or off)")
    return number

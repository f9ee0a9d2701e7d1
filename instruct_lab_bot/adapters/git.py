"""Check a pull request out into a fresh workspace, treating the repository as hostile.

Why so careful: the PR author controls the repository content and the names in the webhook,
and the worker holds an installation token. So names are validated before they reach argv,
every argv is built by a pure function, git runs with no user/system config, no hooks and only
the one transport protocol it needs, and the token reaches git only through environment-based
config (never argv, never ``.git/config``, never an error message).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import tempfile
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from instruct_lab_bot.adapters.runner import RunLimits, run_streaming
from instruct_lab_bot.core.refs import PullRequestRef, RepoRef

__all__ = [
    "CheckoutRequest",
    "CheckoutResult",
    "GitError",
    "GitOutput",
    "auth_header",
    "checkout_argv",
    "checkout_pull_request",
    "fetch_argv",
    "git_env",
    "init_argv",
    "is_ancestor_argv",
    "remote_add_argv",
    "repo_url",
    "rev_parse_argv",
    "run_git",
    "validate_branch_name",
    "validate_repo_name",
    "validate_sha",
]

_OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
_REPO = re.compile(r"[A-Za-z0-9._-]{1,100}")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_SCHEMES = ("https", "http", "file")
_STDERR_LINES = 20
_KILL_GRACE = 2.0
# The only variables git inherits from the worker: finding programs, proxies and CA bundles.
_INHERITED = (
    "PATH",
    "TMPDIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
)


class GitError(Exception):
    """A git step failed. The message is safe to show users: it never contains the token."""


@dataclass(frozen=True)
class CheckoutResult:
    path: Path
    head_sha: str
    base_ref: str  # "origin/<base_branch>", what ilab diffs against


@dataclass(frozen=True)
class GitOutput:
    exit_code: int
    stdout: str


def validate_repo_name(repo: RepoRef) -> None:
    """GitHub's owner/repository name rules; ValueError otherwise."""
    if not _OWNER.fullmatch(repo.owner):
        raise ValueError(f"invalid repository owner {repo.owner!r}")
    if not _REPO.fullmatch(repo.name) or repo.name in (".", ".."):
        raise ValueError(f"invalid repository name {repo.name!r}")


def validate_branch_name(name: str) -> None:
    """``git check-ref-format --branch`` rules in pure Python; ValueError otherwise."""
    problem = _branch_problem(name)
    if problem:
        raise ValueError(f"invalid branch name {name!r}: {problem}")


def _branch_problem(name: str) -> str | None:
    if not name or name in ("@", "HEAD"):
        return "reserved or empty"
    if name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return "bad first or last character"
    if _REF_FORBIDDEN.search(name):
        return "contains a forbidden character"
    if ".." in name or "@{" in name or "//" in name:
        return "contains '..', '@{' or '//'"
    for component in name.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return "a component starts with '.' or ends with '.lock'"
    return None


def validate_sha(sha: str) -> None:
    """A full lowercase commit id (SHA-1 or SHA-256); ValueError otherwise."""
    if not _SHA.fullmatch(sha):
        raise ValueError(f"invalid commit sha {sha!r}")


def repo_url(git_url_base: str, repo: RepoRef) -> str:
    """``<base>/<owner>/<repo>.git``; base is an http(s):// or file:// URL without credentials."""
    validate_repo_name(repo)
    parts = urlsplit(git_url_base)
    if parts.scheme not in _SCHEMES or parts.username or parts.password or parts.query:
        raise ValueError(f"unsupported git URL base {git_url_base!r}")
    return f"{git_url_base.rstrip('/')}/{repo.full_name}.git"


def auth_header(token: str) -> str:
    """The HTTP header GitHub accepts for an installation token over git smart HTTP."""
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
    return f"Authorization: Basic {basic}"


def git_env(
    token: str | None, base_env: Mapping[str, str], *, git_url_base: str, home: Path
) -> dict[str, str]:
    """The complete environment for every git call of one checkout.

    Nothing of the worker's environment leaks in except ``_INHERITED``; user and system config
    are off (``HOME`` is an empty temp dir); config comes from ``GIT_CONFIG_*`` so it never
    lands in argv or ``.git/config``. The token is only added for http(s) bases, scoped to them.
    """
    scheme = urlsplit(git_url_base).scheme
    if scheme not in _SCHEMES:
        raise ValueError(f"unsupported git URL base {git_url_base!r}")
    config = [
        ("core.hooksPath", "/dev/null"),
        ("core.fsmonitor", "false"),
        ("core.symlinks", "false"),  # a PR symlink to a host file must stay a plain file
        ("protocol.allow", "never"),
        (f"protocol.{scheme}.allow", "always"),
        ("protocol.ext.allow", "never"),
        ("transfer.fsckObjects", "true"),
        ("fetch.recurseSubmodules", "false"),
        ("submodule.recurse", "false"),
        ("credential.helper", ""),
        ("gc.auto", "0"),
        ("maintenance.auto", "false"),
        ("advice.detachedHead", "false"),
        ("init.defaultBranch", "main"),
    ]
    if token and scheme in ("http", "https"):
        config.append((f"http.{git_url_base.rstrip('/')}/.extraHeader", auth_header(token)))
    env = {name: base_env[name] for name in _INHERITED if name in base_env}
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_CONFIG_COUNT": str(len(config)),
        }
    )
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def init_argv() -> list[str]:
    # An empty template dir: no sample hooks, nothing but what git needs.
    return ["git", "init", "--quiet", "--template="]


def remote_add_argv(url: str) -> list[str]:
    return ["git", "remote", "add", "--no-tags", "--", "origin", url]


def fetch_argv(base_branch: str, pr_number: int) -> list[str]:
    """A full, not shallow, fetch: ilab diffs ``origin/<base>...HEAD``, needing the merge base."""
    validate_branch_name(base_branch)
    if pr_number <= 0:
        raise ValueError(f"invalid pull request number {pr_number!r}")
    return [
        "git",
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-recurse-submodules",
        "--no-write-fetch-head",
        "--",
        "origin",
        f"+refs/heads/{base_branch}:refs/remotes/origin/{base_branch}",
        f"+refs/pull/{pr_number}/head:refs/remotes/origin/pr/{pr_number}",
    ]


def rev_parse_argv(ref: str) -> list[str]:
    return ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]


def is_ancestor_argv(ancestor: str, descendant: str) -> list[str]:
    validate_sha(ancestor)
    validate_sha(descendant)
    return ["git", "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant]


def checkout_argv(sha: str) -> list[str]:
    validate_sha(sha)
    return ["git", "checkout", "--quiet", "--detach", sha, "--"]


def _prepare_dest(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"checkout destination {dest} is not empty")
    dest.mkdir(parents=True, exist_ok=True)


def _sanitise(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


async def run_git(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - killing git on expiry needs the runner's own timeout
    secrets: Sequence[str] = (),
    ok_codes: Iterable[int] = (0,),
) -> GitOutput:
    """Run one git command with a hard timeout (the whole process group is killed).

    Raises GitError, with the last lines of stderr and every secret replaced by ``***``,
    unless git exited with one of ``ok_codes``.
    """
    stdout: list[str] = []
    stderr: deque[str] = deque(maxlen=_STDERR_LINES)

    def on_line(stream: str, line: str) -> None:
        if stream == "stdout" and len(stdout) < 1000:
            stdout.append(line)
        elif stream == "stderr":
            stderr.append(line[:500])

    step = " ".join(argv[:2])
    result = await run_streaming(
        argv,
        cwd=cwd,
        env=env,
        on_line=on_line,
        limits=RunLimits(timeout=timeout, kill_grace=_KILL_GRACE),
    )
    if result.outcome == "timed_out":
        raise GitError(f"{step} timed out")
    if result.exit_code is None or result.exit_code not in set(ok_codes):
        detail = _sanitise("\n".join(stderr), secrets).strip() or "no error output"
        status = f"exit {result.exit_code}" if result.exit_code is not None else "killed"
        raise GitError(f"{step} failed ({status}): {detail}")
    return GitOutput(result.exit_code, "\n".join(stdout))


@dataclass(frozen=True)
class CheckoutRequest:
    """Which pull request to check out, from where, into where, within how long.

    ``expected_head_sha``: the commit the job was queued for (None: whatever the head is).
    ``timeout`` bounds the whole checkout. ``base_env`` (default: the process environment at
    call time) only provides PATH, proxy and CA settings.
    """

    git_url_base: str
    pull: PullRequestRef
    base_branch: str
    expected_head_sha: str | None
    dest: Path
    token: str | None = field(default=None, repr=False)
    timeout: float = 300.0
    base_env: Mapping[str, str] | None = field(default=None, repr=False)


class _Git:
    """Runs the git steps of one checkout: one environment, one shared deadline, the token's
    forms redacted from every error."""

    def __init__(self, request: CheckoutRequest, home: Path) -> None:
        token = request.token
        self._dest = request.dest
        self._secrets = [token, auth_header(token).split()[-1]] if token else []
        self._env = git_env(
            token,
            os.environ if request.base_env is None else request.base_env,
            git_url_base=request.git_url_base,
            home=home,
        )
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + request.timeout

    async def __call__(self, argv: list[str], ok_codes: Iterable[int] = (0,)) -> GitOutput:
        left = max(self._deadline - self._loop.time(), 0.0)
        return await run_git(
            argv,
            cwd=self._dest,
            env=self._env,
            timeout=left,
            secrets=self._secrets,
            ok_codes=ok_codes,
        )


async def checkout_pull_request(request: CheckoutRequest) -> CheckoutResult:
    """Fetch ``<base_branch>`` and ``refs/pull/<n>/head`` into ``dest`` and detach at the head.

    ``dest`` must not exist or be empty; it is left as is on failure (the caller owns it).
    If ``expected_head_sha`` is given and the PR has moved on since, that commit is checked out
    when it is still in the PR's history; otherwise GitError says the PR moved.

    No retry: git's failures do not say whether they are transient, the whole checkout has one
    deadline, and a failed job is re-run from the PR with one command.
    """
    pull = request.pull
    url = repo_url(request.git_url_base, pull.repo)
    argv_fetch = fetch_argv(request.base_branch, pull.number)
    if request.expected_head_sha is not None:
        validate_sha(request.expected_head_sha)
    _prepare_dest(request.dest)
    with tempfile.TemporaryDirectory(prefix="ilab-bot-git-home-") as home:
        git = _Git(request, Path(home))
        await git(init_argv())
        await git(remote_add_argv(url))
        await git(argv_fetch)
        head = await _head_to_check_out(git, request)
        await git(checkout_argv(head))
    return CheckoutResult(
        path=request.dest, head_sha=head, base_ref=f"origin/{request.base_branch}"
    )


async def _head_to_check_out(git: _Git, request: CheckoutRequest) -> str:
    """The PR's head, or the expected commit if the PR moved on but still contains it."""
    number, expected = request.pull.number, request.expected_head_sha
    head = (await git(rev_parse_argv(f"refs/remotes/origin/pr/{number}"))).stdout.strip()
    if expected is None or expected == head:
        return head
    moved = await git(is_ancestor_argv(expected, head), ok_codes=(0, 1, 128))
    if moved.exit_code != 0:
        raise GitError(
            f"pull request #{number} moved: its head is now {head[:12]}, and "
            f"{expected[:12]} is no longer in its history"
        )
    return expected

"""A local GitHub REST API that checks every request against GitHub's OpenAPI description.

Tests and the demo point the bot's real GitHub client (gidgethub) at this server instead of
api.github.com. It keeps just enough state (pull requests, check runs, comments, reactions,
permissions, …) to answer like GitHub, with bodies built from the description's own examples,
and it records every call and every request GitHub would refuse (`violations`).

    async with GitHubEmulator(spec, app_id=4242, public_key_pem=pem) as gh:
        gh.add_pull("instructlab", "taxonomy", 7, head_sha="abc…", head_ref="my-skill")
        ...  # run the bot with base_url=gh.url
        assert gh.check_runs("instructlab", "taxonomy", head_sha="abc…")[0]["status"] == "queued"
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import hashlib
import itertools
import json
import math
import posixpath
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from testkit.github_manifest import ManifestFlow
from testkit.openapi import OpenAPISpec, Operation, SpecViolation

JSON = dict[str, Any]
DOCS_URL = "https://docs.github.com/rest"
HTML_BASE = "https://github.com"
COMMENT_BODY_MAX = 65536
CHECK_OUTPUT_MAX = 65535
JWT_MAX_LIFETIME = 600 + 60
DROPPED = 499  # the status recorded for a request whose connection was dropped
TOKEN_LIFETIME = timedelta(hours=1)
SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
# Collaborator role → the legacy `permission` field GitHub also returns.
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}
# Endpoints that authenticate as the app (JWT) rather than as an installation (token).
JWT_ROUTES = frozenset(
    {
        "/repos/{owner}/{repo}/installation",
        "/orgs/{org}/installation",
        "/users/{username}/installation",
    }
)


@dataclass
class Call:
    """One request the emulator received (recorded when it arrives; `status` once answered)."""

    method: str
    path: str
    route: str | None  # the OpenAPI path template; None when the path matched none
    query: dict[str, str]
    json: Any
    timestamp: float
    status: int | None = None
    answered: float | None = None  # time.time() when the answer was ready (after any latency)


@dataclass
class Injection:
    """A planned failure: the next `times` matching requests wait and/or get `status`, or
    (`drop`) have their connection closed without an answer (recorded with status 499)."""

    method: str
    target: str  # a route template or a concrete path
    status: int | None
    times: int | None  # None: forever
    delay: float
    headers: dict[str, str]
    body: Any
    drop: bool = False
    #: `hold`: a matching request waits until the test sets this (`arrived` is set first).
    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, route: str, path: str) -> bool:
        method_ok = self.method in ("*", method)
        return method_ok and self.target in ("*", route, path) and self.times != 0

    def lift(self) -> None:
        """End this failure now (an `outage` ends only when lifted)."""
        self.times = 0


@dataclass
class Pull:
    """The emulator's state for one pull request."""

    owner: str
    repo: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    base_sha: str
    user_login: str
    title: str
    body: str | None
    state: str
    draft: bool
    files: list[JSON]
    head_owner: str
    head_repo: str
    author_association: str
    created_at: datetime
    updated_at: datetime
    pull_id: int


@dataclass
class Repo:
    owner: str
    name: str
    repo_id: int
    private: bool
    default_branch: str
    clone_url: str | None
    installation_id: int
    owner_type: str


@dataclass
class _Ctx:
    """What a handler gets: the request, its operation and parsed parts."""

    request: web.Request
    operation: Operation
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    installation_id: int | None

    def int_param(self, name: str) -> int:
        return int(self.params[name])


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _HTTPError(Exception):
    """Raised by handlers to answer with a GitHub-style error body."""

    def __init__(
        self, status: int, message: str | None = None, errors: list[JSON] | None = None
    ) -> None:
        self.status = status
        self.message = message or HTTPStatus(status).phrase
        self.errors = errors
        self.headers: dict[str, str] = {}
        super().__init__(f"{status} {self.message}")


class _SecondaryLimit(_HTTPError):
    """GitHub's answer to too many writes in a short time."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(403, SECONDARY_LIMIT_MESSAGE)
        self.headers["retry-after"] = str(retry_after)


Handler = Callable[[_Ctx], Awaitable[_Reply]]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, ident: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def _rebase(value: Any, old: str, new: str) -> Any:
    """Rewrite the example bodies' api.github.com URLs to point at the emulator."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    return value


def _error_body(message: str, errors: list[JSON] | None = None, status: int | None = None) -> JSON:
    body: JSON = {"message": message, "documentation_url": DOCS_URL}
    if errors:
        body["errors"] = errors
    if status is not None:
        body["status"] = str(status)
    return body


@dataclass(frozen=True)
class AppKey:
    """A GitHub App's id and RSA key pair (tests and the demo make a fresh one)."""

    app_id: int
    private_key_pem: str
    public_key_pem: str


def generate_app_key(app_id: int = 4242) -> AppKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return AppKey(app_id=app_id, private_key_pem=private_pem, public_key_pem=public_pem)


class GitHubEmulator:
    """An aiohttp GitHub REST API on 127.0.0.1 with state, call log and failure injection."""

    def __init__(
        self,
        spec: OpenAPISpec,
        *,
        app_id: int,
        public_key_pem: str,
        app_slug: str = "instruct-lab-bot",
        installation_id: int = 1,
        check_responses: bool = False,
        port: int = 0,
    ) -> None:
        self.spec = spec
        self.app_id = app_id
        self.public_key_pem = public_key_pem
        self.app_slug = app_slug
        self.installation_id = installation_id
        self.token_lifetime = TOKEN_LIFETIME  # shorten it to test token refresh
        self.check_responses = check_responses
        self.bot_login = f"{app_slug}[bot]"

        self.calls: list[Call] = []
        self.violations: list[str] = []
        # Emulator bugs: handler crashes and (with check_responses) bodies the spec forbids.
        self.emulator_errors: list[str] = []
        self.unimplemented: list[str] = []
        self.tokens: dict[int, list[str]] = {}
        self._token_info: dict[str, tuple[int, datetime]] = {}
        self._injections: list[Injection] = []
        self._changed = asyncio.Event()  # replaced after each set: wakes every `wait_for`

        self.rate_limit = 5000
        self.rate_used = 0
        # GitHub's own round trip, added to every API call (`set_latency`); 0 by default.
        self.latency = 0.0
        self.jitter = 0.0
        self._latency_random = random.Random(0)  # noqa: S311 - a benchmark's jitter
        self._open = asyncio.Event()  # cleared by `hold`: API calls wait until `release`
        self._open.set()
        self.rate_reset = int(time.time()) + 3600
        # GitHub's secondary rate limit on content-creating requests (`limit_writes`): per
        # installation, at most `write_limit` writes in any `write_window` seconds (0: none).
        self.write_limit = 0
        self.write_window = 60.0
        self._write_times: dict[int, list[float]] = {}
        self.writes_refused = 0  # writes answered with the secondary rate limit

        self._ids = itertools.count(1001)
        self._user_ids: dict[str, int] = {}
        self._repos: dict[tuple[str, str], Repo] = {}
        self._pulls: dict[tuple[str, str, int], Pull] = {}
        self._check_runs: dict[int, JSON] = {}
        self._check_run_repo: dict[int, tuple[str, str]] = {}
        self._check_history: dict[int, list[JSON]] = {}
        self._check_suites: dict[tuple[str, str, str], int] = {}
        self._comments: dict[int, JSON] = {}
        self._comment_issue: dict[int, tuple[str, str, int]] = {}
        self._reactions: dict[int, list[JSON]] = {}
        self._permissions: dict[tuple[str, str, str], str] = {}
        self._teams: dict[tuple[str, str], dict[str, str]] = {}
        self._org_members: set[tuple[str, str]] = set()
        self._contents: dict[tuple[str, str, str, str], bytes] = {}
        self._links: dict[tuple[str, str, str, str], JSON] = {}  # symlinks and submodules
        self._branches: dict[tuple[str, str, str], str] = {}  # (owner, repo, branch) → sha
        self._commit_files: dict[tuple[str, str, str], Pull] = {}  # head sha → PR at that sha
        self._labels: dict[tuple[str, str, int], list[str]] = {}
        self._label_ids: dict[tuple[str, str, str], int] = {}
        self._statuses: list[tuple[str, str, str, JSON]] = []
        self._deliveries: list[JSON] = []
        self.redeliveries: list[int] = []
        self.manifests = ManifestFlow(spec)  # the App manifest flow (settings/apps/new)
        self.created_app_key: AppKey | None = None

        self._handlers: dict[tuple[str, str], Handler] = self._routes()
        self._runner: web.AppRunner | None = None
        self._requested_port = port
        self._port: int | None = None
        self._closing = asyncio.Event()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self._requested_port))
            self._closing = asyncio.Event()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner

    async def close(self) -> None:
        """Stop serving; requests still waiting on an injected delay are answered 503."""
        self._closing.set()
        self._open.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- test controls -------------------------------------------------------------------

    def inject(
        self,
        method: str,
        target: str,
        *,
        status: int | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        drop: bool = False,
    ) -> Injection:
        """Make the next `times` requests matching `method` (or "*") and `target` (a route
        template like ``/repos/{owner}/{repo}/check-runs``, a concrete path, or "*") wait `delay`
        seconds and, if `status` is given, answer it (with `body`, or a GitHub error body);
        `drop=True` closes the connection instead of answering (the client sees it drop)."""
        injection = Injection(
            method.upper(), target, status, times, delay, dict(headers or {}), body, drop
        )
        self._injections.append(injection)
        return injection

    def hold_one(self, method: str, target: str) -> Injection:
        """Hold the next matching request (that one only: `hold` holds all) until `.gate` is
        set (`.arrived` is set when it comes): a test acts while a call is in flight."""
        injection = self.inject(method, target)
        injection.gate = asyncio.Event()
        return injection

    def outage(
        self, status: int, *, headers: Mapping[str, str] | None = None, body: Any = None
    ) -> Injection:
        """Every request, any method and route, answers `status` until `.lift()`: a stretch of
        502s, or of secondary rate limits (403 with `retry-after` and GitHub's message)."""
        return self.inject("*", "*", status=status, times=None, headers=headers, body=body)

    def secondary_rate_limit(self, retry_after: int = 1) -> Injection:
        """An `outage` of GitHub's secondary rate limit, as the API answers it."""
        return self.outage(
            403,
            headers={"retry-after": str(retry_after)},
            body=_error_body(SECONDARY_LIMIT_MESSAGE),
        )

    def take_violations(self) -> list[str]:
        """Return and clear the recorded violations (for tests that provoke them on purpose)."""
        taken, self.violations = self.violations, []
        return taken

    def issue_token(self, installation_id: int | None = None) -> str:
        """An installation token as if the app had asked for one (skips the JWT dance)."""
        installation = self.installation_id if installation_id is None else installation_id
        token = "ghs_" + secrets.token_urlsafe(27)[:36]
        self._token_info[token] = (installation, _now() + self.token_lifetime)
        self.tokens.setdefault(installation, []).append(token)
        return token

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid (tests of token refresh)."""
        past = _now() - timedelta(seconds=1)
        self._token_info = {t: (i, past) for t, (i, _) in self._token_info.items()}

    def set_latency(self, per_call: float, jitter: float = 0.0, seed: int = 0) -> None:
        """Every API call then waits `per_call` ± `jitter` seconds (uniform, seeded) before it
        is handled, as GitHub answers in 100–300 ms; other calls go on meanwhile."""
        if per_call < 0 or not 0 <= jitter <= per_call:
            raise ValueError("need per_call >= 0 and 0 <= jitter <= per_call")
        self.latency, self.jitter = per_call, jitter
        self._latency_random = random.Random(seed)  # noqa: S311 - a benchmark's jitter

    def hold(self) -> None:
        """From now on every API call is recorded when it arrives but waits, unanswered, until
        `release`: a test can see which calls a client makes before any answer comes back."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _call_latency(self) -> float:
        if not self.jitter:
            return self.latency
        return self.latency + self._latency_random.uniform(-self.jitter, self.jitter)

    def limit_writes(self, per_window: int, window: float = 60.0) -> None:
        """GitHub's secondary rate limit on writes: an installation's POST/PATCH/PUT/DELETE
        beyond `per_window` in any `window` seconds is refused with 403 and `retry-after`
        (until the oldest write leaves the window), as GitHub answers ~80 a minute. A
        benchmark at scaled time scales `window`."""
        if per_window < 0 or window <= 0:
            raise ValueError("need per_window >= 0 and window > 0")
        self.write_limit, self.write_window = per_window, window

    def write_times(self, installation_id: int | None = None) -> list[float]:
        """When each write of the installation that the limit counted arrived (time.time())."""
        return list(self._write_times.get(installation_id or self.installation_id, []))

    def _count_write(self, method: str, installation_id: int | None) -> None:
        """Count an installation's write against `limit_writes`; raise its 403 when over."""
        if installation_id is None or method not in ("POST", "PATCH", "PUT", "DELETE"):
            return
        now = time.time()
        times = self._write_times.setdefault(installation_id, [])
        if self.write_limit:
            recent = [t for t in times if t > now - self.write_window]
            if len(recent) >= self.write_limit:
                self.writes_refused += 1
                wait = max(1, math.ceil(recent[0] + self.write_window - now))
                raise _SecondaryLimit(wait)
        times.append(now)

    def set_rate_limit(self, *, remaining: int, reset_in: int = 3600) -> None:
        self.rate_used = max(0, self.rate_limit - remaining)
        self.rate_reset = int(time.time()) + reset_in

    def add_repo(
        self,
        owner: str,
        repo: str,
        *,
        private: bool = False,
        default_branch: str = "main",
        clone_url: str | None = None,
        installation_id: int | None = None,
        owner_type: str = "Organization",
    ) -> Repo:
        """Declare a repository (`clone_url` can point at a local bare repo for git tests)."""
        state = Repo(
            owner=owner,
            name=repo,
            repo_id=next(self._ids),
            private=private,
            default_branch=default_branch,
            clone_url=clone_url,
            installation_id=self.installation_id if installation_id is None else installation_id,
            owner_type=owner_type,
        )
        self._repos[(owner, repo)] = state
        return state

    def _repo(self, owner: str, repo: str) -> Repo:
        return self._repos.get((owner, repo)) or self.add_repo(owner, repo)

    def add_pull(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        head_sha: str,
        head_ref: str,
        base_ref: str = "main",
        base_sha: str = "0" * 40,
        user_login: str = "contributor",
        title: str = "Add a skill",
        body: str | None = None,
        state: str = "open",
        draft: bool = False,
        files: Iterable[str | JSON] = (),
        head_owner: str | None = None,
        head_repo: str | None = None,
        author_association: str = "CONTRIBUTOR",
    ) -> Pull:
        """Create (or replace) a pull request; `files` are filenames or diff-entry overrides;
        `head_owner`/`head_repo` make it come from a fork."""
        self._repo(owner, repo)
        now = _now()
        pull = Pull(
            owner=owner,
            repo=repo,
            number=number,
            head_sha=head_sha,
            head_ref=head_ref,
            base_ref=base_ref,
            base_sha=base_sha,
            user_login=user_login,
            title=title,
            body=body,
            state=state,
            draft=draft,
            files=[{"filename": f} if isinstance(f, str) else dict(f) for f in files],
            head_owner=head_owner or owner,
            head_repo=head_repo or repo,
            author_association=author_association,
            created_at=now,
            updated_at=now,
            pull_id=next(self._ids),
        )
        if (pull.head_owner, pull.head_repo) != (owner, repo):
            self._repo(pull.head_owner, pull.head_repo)
        self._pulls[(owner, repo, number)] = pull
        self._remember_head(pull)
        return pull

    def _remember_head(self, pull: Pull) -> None:
        """The compare API answers for every head a PR ever had, with the files it had then."""
        snapshot = dataclasses.replace(pull, files=copy.deepcopy(pull.files))
        self._commit_files[(pull.owner, pull.repo, pull.head_sha)] = snapshot

    def update_pull(self, owner: str, repo: str, number: int, **changes: Any) -> Pull:
        """Change fields of a pull request (e.g. a new `head_sha` after a push)."""
        pull = self._pulls[(owner, repo, number)]
        for name, value in changes.items():
            if not hasattr(pull, name):
                raise AttributeError(f"Pull has no field {name!r}")
            if name == "files":
                value = [{"filename": f} if isinstance(f, str) else dict(f) for f in value]
            setattr(pull, name, value)
        pull.updated_at = _now()
        if {"head_sha", "files"} & set(changes):
            self._remember_head(pull)
        return pull

    def add_comment(
        self,
        owner: str,
        repo: str,
        number: int,
        body: str,
        *,
        user_login: str = "contributor",
        author_association: str = "CONTRIBUTOR",
    ) -> JSON:
        """A comment by a person (e.g. ``@instructlab-bot generate``); returns its body."""
        return self._new_comment(owner, repo, number, body, user_login, "User", author_association)

    def add_bot_comment(self, owner: str, repo: str, number: int, body: str) -> JSON:
        """A comment by the App itself (e.g. another poster's copy of a result)."""
        return self._new_comment(owner, repo, number, body, self.bot_login, "Bot", "NONE")

    def set_permission(self, owner: str, repo: str, user: str, permission: str) -> None:
        """`permission` is a role: admin, maintain, write, triage, read or none."""
        if permission not in LEGACY_PERMISSION:
            raise ValueError(f"unknown permission {permission!r}")
        self._permissions[(owner, repo, user)] = permission

    def add_team_member(
        self, org: str, team_slug: str, user: str, *, role: str = "member", state: str = "active"
    ) -> None:
        self._teams.setdefault((org, team_slug), {})[user] = f"{role}:{state}"

    def add_org_member(self, org: str, user: str) -> None:
        self._org_members.add((org, user))

    def set_content(
        self, owner: str, repo: str, path: str, content: str | bytes, *, ref: str | None = None
    ) -> None:
        """A file served by the contents API (`ref` defaults to the default branch)."""
        data = content.encode() if isinstance(content, str) else content
        self._contents[(owner, repo, ref or self._repo(owner, repo).default_branch, path)] = data

    def set_branch(self, owner: str, repo: str, branch: str, sha: str) -> None:
        """Where a branch points (`GET /repos/{owner}/{repo}/git/ref/heads/{branch}`)."""
        self._repo(owner, repo)
        self._branches[(owner, repo, branch)] = sha

    def set_link(
        self,
        owner: str,
        repo: str,
        path: str,
        *,
        ref: str,
        target: str | None = None,
        submodule_url: str | None = None,
    ) -> None:
        """`path` at `ref` is a symbolic link to `target` or a submodule of `submodule_url`.

        As on GitHub, the contents API answers a link to a file that exists at `ref` with
        that file (under the target's path), and any other link with the link itself."""
        kind = "symlink" if submodule_url is None else "submodule"
        entry: JSON = {"type": kind, "target": target, "submodule_git_url": submodule_url}
        self._links[(owner, repo, ref, path)] = entry

    def add_hook_delivery(
        self,
        guid: str,
        *,
        event: str,
        action: str | None = None,
        status_code: int = 200,
        redelivery: bool = False,
        repository_id: int | None = None,
    ) -> JSON:
        """A webhook delivery listed by ``GET /app/hook/deliveries`` (newest first)."""
        delivery = {
            "id": next(self._ids),
            "guid": guid,
            "delivered_at": _iso(_now()),
            "redelivery": redelivery,
            "duration": 0.05,
            "status": "OK" if status_code < 400 else HTTPStatus(status_code).phrase,
            "status_code": status_code,
            "event": event,
            "action": action,
            "installation_id": self.installation_id,
            "repository_id": repository_id,
        }
        self._deliveries.insert(0, delivery)
        return copy.deepcopy(delivery)

    # -- test queries --------------------------------------------------------------------

    def comments(self, owner: str, repo: str, number: int) -> list[JSON]:
        return [
            copy.deepcopy(c)
            for cid, c in sorted(self._comments.items())
            if self._comment_issue[cid] == (owner, repo, number)
        ]

    def comment(self, comment_id: int) -> JSON:
        return copy.deepcopy(self._comments[comment_id])

    def check_runs(
        self, owner: str, repo: str, head_sha: str | None = None, name: str | None = None
    ) -> list[JSON]:
        """Every check run of the repo (oldest first), optionally filtered."""
        return [
            copy.deepcopy(run)
            for rid, run in sorted(self._check_runs.items())
            if self._check_run_repo[rid] == (owner, repo)
            and head_sha in (None, run["head_sha"])
            and name in (None, run["name"])
        ]

    def check_run(self, check_run_id: int) -> JSON:
        return copy.deepcopy(self._check_runs[check_run_id])

    def check_run_history(self, check_run_id: int) -> list[JSON]:
        """The create payload then every update payload, as sent."""
        return copy.deepcopy(self._check_history[check_run_id])

    def reactions(self, owner: str, repo: str, comment_id: int) -> list[JSON]:
        if self._comment_issue.get(comment_id, ("", "", 0))[:2] != (owner, repo):
            return []
        return copy.deepcopy(self._reactions.get(comment_id, []))

    def set_labels(self, owner: str, repo: str, number: int, labels: Iterable[str]) -> None:
        self._labels[(owner, repo, number)] = list(labels)

    def labels(self, owner: str, repo: str, number: int) -> list[str]:
        return list(self._labels.get((owner, repo, number), []))

    def statuses(self, owner: str, repo: str, sha: str) -> list[JSON]:
        return [
            copy.deepcopy(s) for o, r, h, s in self._statuses if (o, r, h) == (owner, repo, sha)
        ]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; it is re-checked whenever a request arrives or is
        answered. Bound it with `asyncio.timeout`, e.g.
        ``async with asyncio.timeout(5): await gh.wait_for(lambda: gh.comments(o, r, 1))``."""
        while not predicate():
            await self._changed.wait()

    async def wait_for_calls(self, method: str, route: str, count: int = 1) -> list[Call]:
        """Wait until `count` matching calls have been received; returns all matching calls."""
        await self.wait_for(lambda: len(self.calls_matching(method, route)) >= count)
        return self.calls_matching(method, route)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def calls_matching(self, method: str, route: str) -> list[Call]:
        """Calls with that method (or "*") whose template or concrete path is `route`."""
        return [
            c
            for c in self.calls
            if method.upper() in ("*", c.method) and route in (c.route, c.path)
        ]

    # -- request pipeline ----------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.rel_url.path.endswith("/settings/apps/new"):
            return await self._new_app_form(request)
        raw_path = request.rel_url.raw_path
        query = dict(request.query.items())
        raw_body = await request.read()
        call = Call(
            method=request.method,
            path=request.rel_url.path,
            route=None,
            query=query,
            json=_try_json(raw_body),
            timestamp=time.time(),
        )
        self.calls.append(call)
        self._notify()
        try:
            operation = self.spec.validate_request(
                request.method, raw_path, query, request.headers, raw_body or None
            )
        except SpecViolation as exc:
            self.violations.append(str(exc))
            reply = _Reply(422, _error_body(f"Invalid request.\n\n{exc}", status=422))
            return self._finish(call, None, reply)
        call.route = operation.template
        if not self._open.is_set():
            await self._open.wait()
        if self.latency and await self._closed_within(self._call_latency()):
            return self._finish(call, operation, _Reply(503, _error_body("shutting down")))
        reply = await self._handle(call, request, operation, raw_path, query)
        return self._finish(call, operation, reply)

    async def _handle(
        self,
        call: Call,
        request: web.Request,
        operation: Operation,
        raw_path: str,
        query: dict[str, str],
    ) -> _Reply:
        injection = self._take_injection(call.method, operation.template, call.path)
        if injection is not None:
            injection.arrived.set()
            if injection.gate is not None:
                await injection.gate.wait()
            if injection.delay and await self._closed_within(injection.delay):
                return _Reply(503, _error_body("The GitHub emulator is shutting down"))
            if injection.drop:
                if request.transport is not None:
                    request.transport.close()
                return _Reply(DROPPED)  # never sent: the connection is already closed
            if injection.status is not None:
                body = injection.body
                if body is None and injection.status >= 400:
                    body = _error_body(HTTPStatus(injection.status).phrase)
                return _Reply(injection.status, body, dict(injection.headers))
        try:
            installation_id = self._authenticate(operation, request)
            self._spend_rate_limit(installation_id)
            self._count_write(operation.method, installation_id)
            handler = self._handlers.get((operation.method, operation.template))
            if handler is None:
                self.unimplemented.append(operation.name)
                raise _HTTPError(404, "Not Found (not implemented by the GitHub emulator)")
            ctx = _Ctx(
                request=request,
                operation=operation,
                params=operation.path_params(raw_path),
                query=query,
                body=call.json,
                installation_id=installation_id,
            )
            return await handler(ctx)
        except _HTTPError as exc:
            reply = _Reply(exc.status, _error_body(exc.message, exc.errors, exc.status))
            reply.headers.update(exc.headers)
            return reply
        except Exception as exc:  # an emulator bug: make it visible to the test
            self.emulator_errors.append(f"{operation.name} crashed: {exc!r}")
            return _Reply(500, _error_body(f"emulator error: {exc!r}", status=500))

    async def _closed_within(self, delay: float) -> bool:
        """Sleep `delay` seconds (other requests go on); True if the emulator closed meanwhile."""
        try:
            async with asyncio.timeout(delay):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True

    def _take_injection(self, method: str, route: str, path: str) -> Injection | None:
        for injection in self._injections:
            if injection.matches(method, route, path):
                if injection.times is not None:
                    injection.times -= 1
                return injection
        return None

    def _finish(self, call: Call, operation: Operation | None, reply: _Reply) -> web.Response:
        call.status = reply.status
        call.answered = time.time()
        self._notify()
        headers = {
            "x-ratelimit-limit": str(self.rate_limit),
            "x-ratelimit-remaining": str(max(0, self.rate_limit - self.rate_used)),
            "x-ratelimit-reset": str(self.rate_reset),
            "x-ratelimit-used": str(self.rate_used),
            "x-ratelimit-resource": "core",
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": secrets.token_hex(8).upper(),
            **reply.headers,
        }
        if (
            self.check_responses
            and operation is not None
            and reply.status < 300
            and (operation.method, operation.template) in self._handlers
        ):
            try:
                self.spec.validate_response(operation, reply.status, reply.body)
            except SpecViolation as exc:
                self.emulator_errors.append(f"response not schema-shaped: {exc}")
        if reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        return web.json_response(reply.body, status=reply.status, headers=headers)

    def _authenticate(self, operation: Operation, request: web.Request) -> int | None:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if operation.template in ("/rate_limit", "/app-manifests/{code}/conversions"):
            return None  # the manifest code is the credential
        if operation.template.startswith("/app") or operation.template in JWT_ROUTES:
            if scheme.lower() != "bearer":
                raise _HTTPError(401, "A JSON web token could not be decoded")
            self._verify_jwt(credential)
            return None
        if scheme.lower() not in ("token", "bearer"):
            raise _HTTPError(401, "Requires authentication")
        info = self._token_info.get(credential)
        if info is None or info[1] <= _now():
            raise _HTTPError(401, "Bad credentials")
        return info[0]

    def _verify_jwt(self, token: str) -> None:
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise _HTTPError(401, f"A JSON web token could not be decoded ({exc})") from None
        if str(claims["iss"]) != str(self.app_id):
            raise _HTTPError(401, "'Issuer' claim ('iss') must be the app id")
        if int(claims["exp"]) - int(claims["iat"]) > JWT_MAX_LIFETIME:
            raise _HTTPError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _refill_rate_limit(self) -> None:
        """As GitHub: once the reset time has passed, the hour starts again in full."""
        now = time.time()
        if now >= self.rate_reset:
            self.rate_used = 0
            self.rate_reset = int(now) + 3600

    def _spend_rate_limit(self, installation_id: int | None) -> None:
        self._refill_rate_limit()
        if self.rate_used >= self.rate_limit:
            raise _HTTPError(403, f"API rate limit exceeded for installation ID {installation_id}.")
        self.rate_used += 1

    # -- helpers for bodies --------------------------------------------------------------

    def _example(self, name: str) -> Any:
        return _rebase(self.spec.example(name), "https://api.github.com", self.url)

    def _api(self, path: str) -> str:
        return f"{self.url}{path}"

    def _user(self, login: str, kind: str = "User") -> JSON:
        user_id = self._user_ids.setdefault(login, next(self._ids))
        api = self._api(f"/users/{quote(login)}")
        return {
            "login": login,
            "id": user_id,
            "node_id": _node_id("User", user_id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{HTML_BASE}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": kind,
            "site_admin": False,
        }

    def _app_body(self) -> JSON:
        app = self._example("integration")
        app.update(
            id=self.app_id,
            slug=self.app_slug,
            node_id=_node_id("Integration", self.app_id),
            name=self.app_slug,
            owner=self._user("instructlab", "Organization"),
            html_url=f"{HTML_BASE}/apps/{self.app_slug}",
            permissions={
                "checks": "write",
                "contents": "read",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
                "members": "read",
            },
            events=["issue_comment", "pull_request", "check_run"],
        )
        return app  # type: ignore[no-any-return]

    def _repo_body(self, owner: str, repo: str) -> JSON:
        state = self._repo(owner, repo)
        body: JSON = self._example("pull-request")["head"]["repo"]
        body = _rebase(
            body, f"{self.url}/repos/octocat/Hello-World", self._api(f"/repos/{owner}/{repo}")
        )
        body = _rebase(
            body, "https://github.com/octocat/Hello-World", f"{HTML_BASE}/{owner}/{repo}"
        )
        body.update(
            id=state.repo_id,
            node_id=_node_id("Repository", state.repo_id),
            name=repo,
            full_name=f"{owner}/{repo}",
            owner=self._user(owner, state.owner_type),
            private=state.private,
            visibility="private" if state.private else "public",
            default_branch=state.default_branch,
            clone_url=state.clone_url or f"{HTML_BASE}/{owner}/{repo}.git",
            description=None,
            homepage=None,
            fork=False,
            topics=[],
        )
        return body

    def _require_repo(self, ctx: _Ctx) -> tuple[str, str]:
        owner, repo = ctx.params["owner"], ctx.params["repo"]
        if (owner, repo) not in self._repos:
            raise _HTTPError(404)
        return owner, repo

    def _page(
        self, ctx: _Ctx, items: list[Any], *, cap: int = 100
    ) -> tuple[list[Any], dict[str, str]]:
        """Slice `items` by per_page/page and build GitHub's Link header."""
        per_page = max(1, min(int(ctx.query.get("per_page", "30")), cap))
        page = max(1, int(ctx.query.get("page", "1")))
        last = max(1, math.ceil(len(items) / per_page))
        links: list[str] = []

        def link(number: int, rel: str) -> None:
            query = {**ctx.query, "per_page": str(per_page), "page": str(number)}
            url = f"{self.url}{ctx.request.rel_url.raw_path}?{urlencode(query)}"
            links.append(f'<{url}>; rel="{rel}"')

        if page > 1:
            link(page - 1, "prev")
        if page < last:
            link(page + 1, "next")
            link(last, "last")
        if page > 1:
            link(1, "first")
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    def _rule(self, message: str, *, resource: str, field_name: str) -> _HTTPError:
        """A request the description allows but GitHub refuses (recorded as a violation)."""
        self.violations.append(f"GitHub rule: {resource}.{field_name}: {message}")
        error = {"resource": resource, "field": field_name, "code": "custom", "message": message}
        return _HTTPError(422, "Validation Failed", [error])

    # -- routes --------------------------------------------------------------------------

    def _routes(self) -> dict[tuple[str, str], Handler]:
        repo = "/repos/{owner}/{repo}"
        return {
            ("POST", "/app/installations/{installation_id}/access_tokens"): self._create_token,
            ("GET", "/app"): self._get_app,
            ("POST", "/app-manifests/{code}/conversions"): self._convert_manifest,
            ("GET", f"{repo}/installation"): self._get_repo_installation,
            ("GET", "/installation/repositories"): self._list_installation_repos,
            ("GET", "/rate_limit"): self._get_rate_limit,
            ("GET", "/app/hook/deliveries"): self._list_deliveries,
            ("GET", "/app/hook/deliveries/{delivery_id}"): self._get_delivery,
            ("POST", "/app/hook/deliveries/{delivery_id}/attempts"): self._redeliver,
            ("GET", f"{repo}/pulls/{{pull_number}}"): self._get_pull,
            ("GET", f"{repo}/pulls/{{pull_number}}/files"): self._list_pull_files,
            ("POST", f"{repo}/check-runs"): self._create_check_run,
            ("PATCH", f"{repo}/check-runs/{{check_run_id}}"): self._update_check_run,
            ("GET", f"{repo}/check-runs/{{check_run_id}}"): self._get_check_run,
            ("GET", f"{repo}/commits/{{ref}}/check-runs"): self._list_check_runs,
            ("POST", f"{repo}/issues/{{issue_number}}/comments"): self._create_comment,
            ("GET", f"{repo}/issues/{{issue_number}}/comments"): self._list_comments,
            ("GET", f"{repo}/issues/comments/{{comment_id}}"): self._get_comment,
            ("PATCH", f"{repo}/issues/comments/{{comment_id}}"): self._update_comment,
            ("DELETE", f"{repo}/issues/comments/{{comment_id}}"): self._delete_comment,
            ("POST", f"{repo}/issues/comments/{{comment_id}}/reactions"): self._create_reaction,
            ("GET", f"{repo}/issues/comments/{{comment_id}}/reactions"): self._list_reactions,
            (
                "DELETE",
                f"{repo}/issues/comments/{{comment_id}}/reactions/{{reaction_id}}",
            ): self._delete_reaction,
            ("GET", f"{repo}/collaborators/{{username}}/permission"): self._get_permission,
            ("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}"): self._get_team_member,
            ("GET", "/orgs/{org}/members/{username}"): self._get_org_member,
            ("GET", f"{repo}/contents/{{path}}"): self._get_content,
            ("GET", f"{repo}/git/ref/{{ref}}"): self._get_git_ref,
            ("GET", f"{repo}/compare/{{basehead}}"): self._compare,
            ("POST", f"{repo}/issues/{{issue_number}}/labels"): self._add_labels,
            ("DELETE", f"{repo}/issues/{{issue_number}}/labels/{{name}}"): self._remove_label,
            ("POST", f"{repo}/statuses/{{sha}}"): self._create_status,
        }

    # apps ------------------------------------------------------------------------------

    async def _create_token(self, ctx: _Ctx) -> _Reply:
        installation_id = ctx.int_param("installation_id")
        token = self.issue_token(installation_id)
        expires_at = self._token_info[token][1]
        body = {
            "token": token,
            "expires_at": _iso(expires_at),
            "permissions": self._app_body()["permissions"],
            "repository_selection": "selected",
        }
        return _Reply(201, body)

    async def _get_app(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._app_body())

    async def _new_app_form(self, request: web.Request) -> web.StreamResponse:
        """GitHub's website: the manifest form's POST, confirmed at once (no login page)."""
        form = await request.post()
        status, where = self.manifests.submit(
            str(form.get("manifest", "")), request.rel_url.query.get("state")
        )
        if status != 302:
            self.violations.append(f"App manifest refused: {where}")
            return web.Response(status=status, text=where)
        raise web.HTTPFound(where)

    async def _convert_manifest(self, ctx: _Ctx) -> _Reply:
        """The code becomes an App: this emulator then answers as that App (its key)."""
        manifest = self.manifests.take(ctx.params["code"])
        if manifest is None:
            raise _HTTPError(404)
        key = generate_app_key(next(self._ids))
        self.created_app_key = key
        self.app_id, self.public_key_pem = key.app_id, key.public_key_pem
        self.app_slug = str(manifest.get("name", "app")).lower().replace(" ", "-")
        body = self._example("integration-from-manifest")
        body.update(
            self._app_body(),
            name=manifest.get("name"),
            permissions=manifest.get("default_permissions", {}),
            events=manifest.get("default_events", []),
            external_url=manifest["url"],
            pem=key.private_key_pem,
            webhook_secret=secrets.token_hex(20),
            client_secret=secrets.token_hex(20),
        )
        return _Reply(201, body)

    def _installation_body(self, installation_id: int, account: str) -> JSON:
        body: JSON = self._example("installation")
        body.update(
            id=installation_id,
            app_id=self.app_id,
            app_slug=self.app_slug,
            account=self._user(account, "Organization"),
            access_tokens_url=self._api(f"/app/installations/{installation_id}/access_tokens"),
            permissions=self._app_body()["permissions"],
            events=self._app_body()["events"],
        )
        return body

    async def _get_repo_installation(self, ctx: _Ctx) -> _Reply:
        owner, repo = self._require_repo(ctx)
        installation = self._repos[(owner, repo)].installation_id
        return _Reply(200, self._installation_body(installation, owner))

    async def _list_installation_repos(self, ctx: _Ctx) -> _Reply:
        repos = [
            self._repo_body(r.owner, r.name)
            for r in self._repos.values()
            if r.installation_id == ctx.installation_id
        ]
        page, headers = self._page(ctx, repos)
        body = {"total_count": len(repos), "repository_selection": "selected", "repositories": page}
        return _Reply(200, body, headers)

    async def _get_rate_limit(self, ctx: _Ctx) -> _Reply:
        self._refill_rate_limit()
        body: JSON = self.spec.example("rate-limit-overview")
        core = {
            "limit": self.rate_limit,
            "used": self.rate_used,
            "remaining": max(0, self.rate_limit - self.rate_used),
            "reset": self.rate_reset,
        }
        body["resources"]["core"] = core
        body["rate"] = dict(core)
        return _Reply(200, body)

    async def _list_deliveries(self, ctx: _Ctx) -> _Reply:
        wanted = ctx.query.get("status")
        items = [
            d
            for d in self._deliveries
            if wanted is None or (d["status_code"] < 400) == (wanted == "success")
        ]
        per_page = max(1, min(int(ctx.query.get("per_page", "30")), 100))
        start = int(ctx.query.get("cursor", "0") or "0")
        headers: dict[str, str] = {}
        if start + per_page < len(items):
            query = {**ctx.query, "per_page": str(per_page), "cursor": str(start + per_page)}
            headers["Link"] = (
                f'<{self.url}{ctx.request.rel_url.raw_path}?{urlencode(query)}>; rel="next"'
            )
        return _Reply(200, copy.deepcopy(items[start : start + per_page]), headers)

    def _delivery(self, ctx: _Ctx) -> JSON:
        wanted = ctx.int_param("delivery_id")
        for delivery in self._deliveries:
            if delivery["id"] == wanted:
                return delivery
        raise _HTTPError(404)

    async def _get_delivery(self, ctx: _Ctx) -> _Reply:
        body = copy.deepcopy(self._delivery(ctx))
        body["request"] = {"headers": {"X-GitHub-Event": body["event"]}, "payload": {}}
        body["response"] = {"headers": {}, "payload": None}
        body["url"] = self._api("/app/hook/deliveries")
        return _Reply(200, body)

    async def _redeliver(self, ctx: _Ctx) -> _Reply:
        self.redeliveries.append(self._delivery(ctx)["id"])
        return _Reply(202, {})

    # pulls -----------------------------------------------------------------------------

    def _pull(self, ctx: _Ctx) -> Pull:
        key = (ctx.params["owner"], ctx.params["repo"], ctx.int_param("pull_number"))
        pull = self._pulls.get(key)
        if pull is None:
            raise _HTTPError(404)
        return pull

    def _pull_body(self, pull: Pull) -> JSON:
        body: JSON = self._example("pull-request")
        api = self._api(f"/repos/{pull.owner}/{pull.repo}")
        html = f"{HTML_BASE}/{pull.owner}/{pull.repo}/pull/{pull.number}"
        head_user = self._user(
            pull.head_owner, self._repo(pull.head_owner, pull.head_repo).owner_type
        )
        base_user = self._user(pull.owner, self._repo(pull.owner, pull.repo).owner_type)
        labels = [
            self._label_body(pull.owner, pull.repo, n)
            for n in self.labels(pull.owner, pull.repo, pull.number)
        ]
        body.update(
            url=f"{api}/pulls/{pull.number}",
            id=pull.pull_id,
            node_id=_node_id("PullRequest", pull.pull_id),
            html_url=html,
            diff_url=f"{html}.diff",
            patch_url=f"{html}.patch",
            issue_url=f"{api}/issues/{pull.number}",
            commits_url=f"{api}/pulls/{pull.number}/commits",
            review_comments_url=f"{api}/pulls/{pull.number}/comments",
            review_comment_url=f"{api}/pulls/comments{{/number}}",
            comments_url=f"{api}/issues/{pull.number}/comments",
            statuses_url=f"{api}/statuses/{pull.head_sha}",
            number=pull.number,
            state=pull.state,
            locked=False,
            title=pull.title,
            user=self._user(pull.user_login),
            body=pull.body,
            labels=labels,
            milestone=None,
            active_lock_reason=None,
            created_at=_iso(pull.created_at),
            updated_at=_iso(pull.updated_at),
            closed_at=None if pull.state == "open" else _iso(pull.updated_at),
            merged_at=None,
            merge_commit_sha=None,
            assignee=None,
            assignees=[],
            requested_reviewers=[],
            requested_teams=[],
            head={
                "label": f"{pull.head_owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": head_user,
                "repo": self._repo_body(pull.head_owner, pull.head_repo),
            },
            base={
                "label": f"{pull.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": pull.base_sha,
                "user": base_user,
                "repo": self._repo_body(pull.owner, pull.repo),
            },
            _links={
                "self": {"href": f"{api}/pulls/{pull.number}"},
                "html": {"href": html},
                "issue": {"href": f"{api}/issues/{pull.number}"},
                "comments": {"href": f"{api}/issues/{pull.number}/comments"},
                "review_comments": {"href": f"{api}/pulls/{pull.number}/comments"},
                "review_comment": {"href": f"{api}/pulls/comments{{/number}}"},
                "commits": {"href": f"{api}/pulls/{pull.number}/commits"},
                "statuses": {"href": f"{api}/statuses/{pull.head_sha}"},
            },
            author_association=pull.author_association,
            auto_merge=None,
            draft=pull.draft,
            merged=False,
            mergeable=True,
            rebaseable=True,
            mergeable_state="clean",
            merged_by=None,
            comments=len(self.comments(pull.owner, pull.repo, pull.number)),
            review_comments=0,
            maintainer_can_modify=False,
            commits=1,
            additions=sum(int(f.get("additions", 1)) for f in pull.files),
            deletions=sum(int(f.get("deletions", 0)) for f in pull.files),
            changed_files=len(pull.files),
        )
        return body

    async def _get_pull(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._pull_body(self._pull(ctx)))

    def _diff_entry(self, pull: Pull, entry: JSON) -> JSON:
        name = str(entry["filename"])
        blob = hashlib.sha1(f"{pull.head_sha}:{name}".encode(), usedforsecurity=False).hexdigest()
        html = f"{HTML_BASE}/{pull.head_owner}/{pull.head_repo}"
        path = quote(name)
        additions = int(entry.get("additions", 1))
        deletions = int(entry.get("deletions", 0))
        body: JSON = {
            "sha": blob,
            "filename": name,
            "status": "added",
            "additions": additions,
            "deletions": deletions,
            "changes": additions + deletions,
            "blob_url": f"{html}/blob/{pull.head_sha}/{path}",
            "raw_url": f"{html}/raw/{pull.head_sha}/{path}",
            "contents_url": self._api(
                f"/repos/{pull.head_owner}/{pull.head_repo}/contents/{path}?ref={pull.head_sha}"
            ),
            "patch": "@@ -0,0 +1 @@\n+…",
        }
        body.update({k: v for k, v in entry.items() if k != "filename"})
        return body

    async def _list_pull_files(self, ctx: _Ctx) -> _Reply:
        pull = self._pull(ctx)
        files = [self._diff_entry(pull, f) for f in pull.files]
        page, headers = self._page(ctx, files)
        return _Reply(200, page, headers)

    # check runs ------------------------------------------------------------------------

    def _check_output_rules(self, output: Any) -> None:
        if not isinstance(output, Mapping):
            return
        if not output.get("title"):
            raise self._rule("output.title is required", resource="CheckRun", field_name="title")
        for key in ("summary", "text"):
            value = output.get(key)
            if isinstance(value, str) and len(value) > CHECK_OUTPUT_MAX:
                raise self._rule(
                    f"Only {CHECK_OUTPUT_MAX} characters are allowed; {len(value)} were supplied.",
                    resource="CheckRun",
                    field_name=key,
                )

    def _check_completion_rules(self, run: JSON) -> None:
        if run["status"] == "completed" and not run.get("conclusion"):
            raise self._rule(
                "conclusion is required when status is completed",
                resource="CheckRun",
                field_name="conclusion",
            )

    def _apply_check_payload(self, run: JSON, payload: Mapping[str, Any]) -> None:
        for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
            if key in payload:
                run[key] = payload[key]
        if "status" in payload:
            run["status"] = payload["status"]
            if payload["status"] != "completed":
                run["conclusion"] = None
                run["completed_at"] = None
        if payload.get("conclusion") is not None:
            run["conclusion"] = payload["conclusion"]
            run["status"] = "completed"
        if run["status"] == "completed" and not run.get("completed_at"):
            run["completed_at"] = _iso(_now())
        if isinstance(payload.get("output"), Mapping):
            given = payload["output"]
            output = run["output"]
            for key in ("title", "summary", "text"):
                if key in given:
                    output[key] = given[key]
            output["annotations_count"] += len(given.get("annotations", []))
        if "actions" in payload:
            run["actions"] = copy.deepcopy(payload["actions"])

    async def _create_check_run(self, ctx: _Ctx) -> _Reply:
        owner, repo = ctx.params["owner"], ctx.params["repo"]
        self._repo(owner, repo)
        payload: JSON = ctx.body
        self._check_output_rules(payload.get("output"))
        run_id = next(self._ids)
        suite_id = self._check_suites.setdefault(
            (owner, repo, payload["head_sha"]), next(self._ids)
        )
        api = self._api(f"/repos/{owner}/{repo}")
        run: JSON = self._example("check-run")
        run.update(
            id=run_id,
            node_id=_node_id("CheckRun", run_id),
            head_sha=payload["head_sha"],
            name=payload["name"],
            external_id="",
            url=f"{api}/check-runs/{run_id}",
            html_url=f"{HTML_BASE}/{owner}/{repo}/runs/{run_id}",
            details_url=f"{HTML_BASE}/apps/{self.app_slug}",
            status="queued",
            conclusion=None,
            started_at=_iso(_now()),
            completed_at=None,
            output={
                "title": None,
                "summary": None,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{api}/check-runs/{run_id}/annotations",
            },
            check_suite={"id": suite_id},
            app=self._app_body(),
            pull_requests=self._check_pulls(owner, repo, payload["head_sha"]),
        )
        self._apply_check_payload(run, payload)
        self._check_completion_rules(run)
        self._check_runs[run_id] = run
        self._check_run_repo[run_id] = (owner, repo)
        self._check_history[run_id] = [copy.deepcopy(payload)]
        return _Reply(201, copy.deepcopy(run))

    def _check_pulls(self, owner: str, repo: str, head_sha: str) -> list[JSON]:
        refs = []
        for pull in self._pulls.values():
            if (pull.owner, pull.repo, pull.head_sha) != (owner, repo, head_sha):
                continue
            if (pull.head_owner, pull.head_repo) != (owner, repo):
                continue  # GitHub leaves pull_requests empty for forks
            repo_ref = {
                "id": self._repo(owner, repo).repo_id,
                "url": self._api(f"/repos/{owner}/{repo}"),
                "name": repo,
            }
            refs.append(
                {
                    "url": self._api(f"/repos/{owner}/{repo}/pulls/{pull.number}"),
                    "id": pull.pull_id,
                    "number": pull.number,
                    "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": repo_ref},
                    "base": {"ref": pull.base_ref, "sha": pull.base_sha, "repo": repo_ref},
                }
            )
        return refs

    def _run(self, ctx: _Ctx) -> JSON:
        run_id = ctx.int_param("check_run_id")
        if self._check_run_repo.get(run_id) != (ctx.params["owner"], ctx.params["repo"]):
            raise _HTTPError(404)
        return self._check_runs[run_id]

    async def _update_check_run(self, ctx: _Ctx) -> _Reply:
        run = self._run(ctx)
        payload: JSON = ctx.body
        self._check_output_rules(payload.get("output"))
        updated = copy.deepcopy(run)
        self._apply_check_payload(updated, payload)
        self._check_completion_rules(updated)
        self._check_runs[run["id"]] = updated
        self._check_history[run["id"]].append(copy.deepcopy(payload))
        return _Reply(200, copy.deepcopy(updated))

    async def _get_check_run(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, copy.deepcopy(self._run(ctx)))

    async def _list_check_runs(self, ctx: _Ctx) -> _Reply:
        owner, repo, ref = ctx.params["owner"], ctx.params["repo"], ctx.params["ref"]
        shas = {ref} | {
            p.head_sha
            for p in self._pulls.values()
            if (p.owner, p.repo, p.head_ref) == (owner, repo, ref)
        }
        runs = [
            run
            for rid, run in sorted(self._check_runs.items(), reverse=True)
            if self._check_run_repo[rid] == (owner, repo)
            and run["head_sha"] in shas
            and ctx.query.get("check_name") in (None, run["name"])
            and ctx.query.get("status") in (None, run["status"])
            and ctx.query.get("app_id") in (None, str(self.app_id))
        ]
        if ctx.query.get("filter", "latest") == "latest":
            seen: set[str] = set()
            latest = []
            for run in runs:
                if run["name"] not in seen:
                    seen.add(run["name"])
                    latest.append(run)
            runs = latest
        page, headers = self._page(ctx, runs)
        return _Reply(200, {"total_count": len(runs), "check_runs": copy.deepcopy(page)}, headers)

    # comments and reactions ------------------------------------------------------------

    def _issue(self, ctx: _Ctx) -> tuple[str, str, int]:
        key = (ctx.params["owner"], ctx.params["repo"], ctx.int_param("issue_number"))
        if key not in self._pulls:
            raise _HTTPError(404)
        return key

    def _rollup(self, owner: str, repo: str, comment_id: int) -> JSON:
        counts = dict.fromkeys(REACTIONS, 0)
        for reaction in self._reactions.get(comment_id, []):
            counts[reaction["content"]] += 1
        url = self._api(f"/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
        return {"url": url, "total_count": sum(counts.values()), **counts}

    def _new_comment(
        self,
        owner: str,
        repo: str,
        number: int,
        text: str,
        login: str,
        kind: str,
        association: str,
    ) -> JSON:
        self._repo(owner, repo)
        comment_id = next(self._ids)
        api = self._api(f"/repos/{owner}/{repo}")
        now = _iso(_now())
        comment: JSON = self._example("issue-comment")
        comment.update(
            id=comment_id,
            node_id=_node_id("IssueComment", comment_id),
            url=f"{api}/issues/comments/{comment_id}",
            html_url=f"{HTML_BASE}/{owner}/{repo}/pull/{number}#issuecomment-{comment_id}",
            body=text,
            user=self._user(login, kind),
            created_at=now,
            updated_at=now,
            issue_url=f"{api}/issues/{number}",
            author_association=association,
            performed_via_github_app=self._app_body() if kind == "Bot" else None,
        )
        self._comments[comment_id] = comment
        self._comment_issue[comment_id] = (owner, repo, number)
        return self._comment_body(comment_id)

    def _comment_body(self, comment_id: int) -> JSON:
        owner, repo, _ = self._comment_issue[comment_id]
        body = copy.deepcopy(self._comments[comment_id])
        body["reactions"] = self._rollup(owner, repo, comment_id)
        return body

    def _check_comment_body(self, payload: Mapping[str, Any]) -> str:
        text = str(payload["body"])
        if len(text) > COMMENT_BODY_MAX:
            raise self._rule(
                f"Body is too long (maximum is {COMMENT_BODY_MAX} characters)",
                resource="IssueComment",
                field_name="body",
            )
        return text

    async def _create_comment(self, ctx: _Ctx) -> _Reply:
        owner, repo, number = self._issue(ctx)
        text = self._check_comment_body(ctx.body)
        body = self._new_comment(owner, repo, number, text, self.bot_login, "Bot", "NONE")
        return _Reply(201, body, {"Location": body["url"]})

    async def _list_comments(self, ctx: _Ctx) -> _Reply:
        owner, repo, number = self._issue(ctx)
        since = ctx.query.get("since")
        items = [
            self._comment_body(cid)
            for cid in sorted(self._comments)
            if self._comment_issue[cid] == (owner, repo, number)
            and (since is None or self._comments[cid]["updated_at"] >= since)
        ]
        page, headers = self._page(ctx, items)
        return _Reply(200, page, headers)

    def _comment_id(self, ctx: _Ctx) -> int:
        comment_id = ctx.int_param("comment_id")
        issue = self._comment_issue.get(comment_id)
        if issue is None or issue[:2] != (ctx.params["owner"], ctx.params["repo"]):
            raise _HTTPError(404)
        return comment_id

    async def _get_comment(self, ctx: _Ctx) -> _Reply:
        return _Reply(200, self._comment_body(self._comment_id(ctx)))

    async def _update_comment(self, ctx: _Ctx) -> _Reply:
        comment_id = self._comment_id(ctx)
        text = self._check_comment_body(ctx.body)
        self._comments[comment_id].update(body=text, updated_at=_iso(_now()))
        return _Reply(200, self._comment_body(comment_id))

    async def _delete_comment(self, ctx: _Ctx) -> _Reply:
        comment_id = self._comment_id(ctx)
        del self._comments[comment_id]
        del self._comment_issue[comment_id]
        self._reactions.pop(comment_id, None)
        return _Reply(204, None)

    async def _create_reaction(self, ctx: _Ctx) -> _Reply:
        comment_id = self._comment_id(ctx)
        content = str(ctx.body["content"])
        existing = self._reactions.setdefault(comment_id, [])
        for old in existing:
            if old["content"] == content and old["user"]["login"] == self.bot_login:
                return _Reply(200, copy.deepcopy(old))
        reaction_id = next(self._ids)
        reaction: JSON = {
            "id": reaction_id,
            "node_id": _node_id("Reaction", reaction_id),
            "user": self._user(self.bot_login, "Bot"),
            "content": content,
            "created_at": _iso(_now()),
        }
        existing.append(reaction)
        return _Reply(201, copy.deepcopy(reaction))

    async def _list_reactions(self, ctx: _Ctx) -> _Reply:
        comment_id = self._comment_id(ctx)
        items = [
            r
            for r in self._reactions.get(comment_id, [])
            if ctx.query.get("content") in (None, r["content"])
        ]
        page, headers = self._page(ctx, items)
        return _Reply(200, copy.deepcopy(page), headers)

    async def _delete_reaction(self, ctx: _Ctx) -> _Reply:
        comment_id = self._comment_id(ctx)
        reaction_id = ctx.int_param("reaction_id")
        existing = self._reactions.get(comment_id, [])
        kept = [r for r in existing if r["id"] != reaction_id]
        if len(kept) == len(existing):
            raise _HTTPError(404)
        self._reactions[comment_id] = kept
        return _Reply(204)

    # permissions, teams, contents, labels, statuses ------------------------------------

    async def _get_permission(self, ctx: _Ctx) -> _Reply:
        owner, repo, login = ctx.params["owner"], ctx.params["repo"], ctx.params["username"]
        self._require_repo(ctx)
        role = self._permissions.get((owner, repo, login), "read")
        user = self._user(login)
        legacy = LEGACY_PERMISSION[role]
        user["permissions"] = {
            "admin": role == "admin",
            "maintain": role in ("admin", "maintain"),
            "push": legacy in ("admin", "write"),
            "triage": role in ("admin", "maintain", "write", "triage"),
            "pull": role != "none",
        }
        user["role_name"] = role
        return _Reply(200, {"permission": legacy, "role_name": role, "user": user})

    async def _get_team_member(self, ctx: _Ctx) -> _Reply:
        org, team, login = ctx.params["org"], ctx.params["team_slug"], ctx.params["username"]
        entry = self._teams.get((org, team), {}).get(login)
        if entry is None:
            raise _HTTPError(404)
        role, state = entry.split(":")
        url = self._api(f"/orgs/{org}/teams/{team}/memberships/{login}")
        return _Reply(200, {"url": url, "role": role, "state": state})

    async def _get_org_member(self, ctx: _Ctx) -> _Reply:
        if (ctx.params["org"], ctx.params["username"]) not in self._org_members:
            raise _HTTPError(404)
        return _Reply(204)

    async def _get_git_ref(self, ctx: _Ctx) -> _Reply:
        owner, repo = self._require_repo(ctx)
        ref = ctx.params["ref"]
        kind, _, branch = ref.partition("/")
        sha = self._branches.get((owner, repo, branch)) if kind == "heads" else None
        if sha is None:
            raise _HTTPError(404)
        api = self._api(f"/repos/{owner}/{repo}")
        return _Reply(
            200,
            {
                "ref": f"refs/{ref}",
                "node_id": _node_id("Ref", sum(map(ord, ref))),
                "url": f"{api}/git/refs/{ref}",
                "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
            },
        )

    async def _get_content(self, ctx: _Ctx) -> _Reply:
        owner, repo = self._require_repo(ctx)
        path = ctx.params["path"]
        ref = ctx.query.get("ref") or self._repos[(owner, repo)].default_branch
        link = self._links.get((owner, repo, ref, path))
        if link is not None:
            target = posixpath.normpath(
                posixpath.join(posixpath.dirname(path), link["target"] or "")
            )
            if link["type"] == "symlink" and (owner, repo, ref, target) in self._contents:
                path = target  # GitHub follows a link to a file in the repository
            else:
                return _Reply(200, self._link_body(owner, repo, ref, path, link))
        data = self._contents.get((owner, repo, ref, path))
        if data is None:
            raise _HTTPError(404)
        body = self._content_links(owner, repo, ref, path, data)
        big = len(data) > 1024 * 1024  # GitHub sends no content for files over 1 MB
        body.update(
            type="file",
            encoding="none" if big else "base64",
            content="" if big else base64.encodebytes(data).decode(),
        )
        return _Reply(200, body)

    def _content_links(self, owner: str, repo: str, ref: str, path: str, data: bytes) -> JSON:
        sha = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
        url = self._api(f"/repos/{owner}/{repo}/contents/{quote(path)}?ref={quote(ref)}")
        git_url = self._api(f"/repos/{owner}/{repo}/git/blobs/{sha}")
        html_url = f"{HTML_BASE}/{owner}/{repo}/blob/{ref}/{quote(path)}"
        return {
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": url,
            "git_url": git_url,
            "html_url": html_url,
            "download_url": f"https://raw.githubusercontent.com/{owner}/{repo}/{ref}/{quote(path)}",
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def _link_body(self, owner: str, repo: str, ref: str, path: str, link: JSON) -> JSON:
        if link["type"] == "symlink":
            target = str(link["target"])
            body = self._content_links(owner, repo, ref, path, target.encode())
            body.update(type="symlink", target=target)
            return body
        body = self._content_links(owner, repo, ref, path, b"")
        body.update(type="submodule", submodule_git_url=link["submodule_git_url"])
        body.update(download_url=None)
        return body

    # compare ---------------------------------------------------------------------------

    async def _compare(self, ctx: _Ctx) -> _Reply:
        """`base...head` for a head some PR of the repo had: that PR's files then (at most
        300, as GitHub lists), one commit."""
        owner, repo = self._require_repo(ctx)
        base, dots, head = ctx.params["basehead"].partition("...")
        pull = self._commit_files.get((owner, repo, head.rsplit(":", 1)[-1]))
        if not dots or not base or pull is None:
            raise _HTTPError(404)
        body: JSON = self._example("commit-comparison")
        api = self._api(f"/repos/{owner}/{repo}")
        html = f"{HTML_BASE}/{owner}/{repo}"
        files = [self._diff_entry(pull, f) for f in pull.files][:300]
        body.update(
            url=f"{api}/compare/{quote(ctx.params['basehead'], safe='')}",
            html_url=f"{html}/compare/{ctx.params['basehead']}",
            permalink_url=f"{html}/compare/{pull.base_sha}...{pull.head_sha}",
            diff_url=f"{html}/compare/{ctx.params['basehead']}.diff",
            patch_url=f"{html}/compare/{ctx.params['basehead']}.patch",
            status="ahead",
            ahead_by=1,
            behind_by=0,
            total_commits=1,
            commits=body["commits"][:1],
            files=files,
        )
        body["commits"][0]["sha"] = pull.head_sha
        return _Reply(200, body)

    def _label_body(self, owner: str, repo: str, name: str) -> JSON:
        label_id = self._label_ids.setdefault((owner, repo, name), next(self._ids))
        return {
            "id": label_id,
            "node_id": _node_id("Label", label_id),
            "url": self._api(f"/repos/{owner}/{repo}/labels/{quote(name)}"),
            "name": name,
            "description": None,
            "color": "ededed",
            "default": False,
        }

    async def _add_labels(self, ctx: _Ctx) -> _Reply:
        owner, repo, number = self._issue(ctx)
        payload = ctx.body
        given = payload.get("labels", []) if isinstance(payload, Mapping) else payload or []
        names = [str(x["name"]) if isinstance(x, Mapping) else str(x) for x in given]
        current = self._labels.setdefault((owner, repo, number), [])
        current.extend(n for n in names if n not in current)
        return _Reply(200, [self._label_body(owner, repo, n) for n in current])

    async def _remove_label(self, ctx: _Ctx) -> _Reply:
        owner, repo, number = self._issue(ctx)
        current = self._labels.get((owner, repo, number), [])
        if ctx.params["name"] not in current:
            raise _HTTPError(404, "Label does not exist")
        current.remove(ctx.params["name"])
        return _Reply(200, [self._label_body(owner, repo, n) for n in current])

    async def _create_status(self, ctx: _Ctx) -> _Reply:
        owner, repo, sha = ctx.params["owner"], ctx.params["repo"], ctx.params["sha"]
        self._repo(owner, repo)
        payload: JSON = ctx.body
        status_id = next(self._ids)
        now = _iso(_now())
        body = {
            "url": self._api(f"/repos/{owner}/{repo}/statuses/{sha}"),
            "avatar_url": None,
            "id": status_id,
            "node_id": _node_id("StatusContext", status_id),
            "state": payload["state"],
            "description": payload.get("description"),
            "target_url": payload.get("target_url"),
            "context": payload.get("context", "default"),
            "created_at": now,
            "updated_at": now,
            "creator": self._user(self.bot_login, "Bot"),
        }
        self._statuses.append((owner, repo, sha, body))
        return _Reply(201, copy.deepcopy(body), {"Location": body["url"]})


def _try_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None

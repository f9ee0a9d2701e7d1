"""Workspace checkout against real git repositories (file:// and a dumb-HTTP server)."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from instruct_lab_bot.adapters.git import (
    CheckoutRequest,
    CheckoutResult,
    GitError,
    auth_header,
    checkout_argv,
    checkout_pull_request,
    fetch_argv,
    git_env,
    init_argv,
    is_ancestor_argv,
    remote_add_argv,
    repo_url,
    rev_parse_argv,
    run_git,
    validate_branch_name,
    validate_repo_name,
)
from instruct_lab_bot.core.refs import RepoRef

TOKEN = "ghs_TestInstallationToken0123456789abcdef"


def git_out(cwd: Path, *args: str) -> str:
    """Run the test's own git (hermetic identity and config) and return stdout."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def commit(work: Path, name: str, text: str) -> str:
    (work / name).parent.mkdir(parents=True, exist_ok=True)
    (work / name).write_text(text)
    git_out(work, "add", "--", name)
    git_out(work, "commit", "--quiet", "-m", f"add {name}")
    return git_out(work, "rev-parse", "HEAD")


@dataclass(frozen=True)
class Upstream:
    base_url: str  # file:// URL of the directory holding acme/taxonomy.git
    root: Path
    bare: Path
    fork_point: str  # main when the PR branched off
    main_head: str
    pr_first: str
    pr_head: str


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """main: c1 - c2 - c3; PR #7: c2 - p1 - p2 (refs/pull/7/head in the bare repo); a tag."""
    work = tmp_path / "work"
    work.mkdir()
    git_out(work, "init", "--quiet", "--initial-branch=main")
    commit(work, "README.md", "taxonomy\n")
    fork_point = commit(work, "compositional_skills/qna.yaml", "version: 3\n")
    git_out(work, "tag", "v1")
    git_out(work, "checkout", "--quiet", "-b", "contrib")
    pr_first = commit(work, "knowledge/science/qna.yaml", "version: 3\n")
    pr_head = commit(work, "knowledge/science/attribution.txt", "source\n")
    git_out(work, "checkout", "--quiet", "main")
    main_head = commit(work, "CONTRIBUTING.md", "be nice\n")
    root = tmp_path / "srv"
    bare = root / "acme" / "taxonomy.git"
    bare.parent.mkdir(parents=True)
    git_out(tmp_path, "clone", "--quiet", "--bare", str(work), str(bare))
    git_out(bare, "update-ref", "refs/pull/7/head", pr_head)
    git_out(bare, "branch", "--quiet", "-D", "contrib")
    git_out(bare, "update-server-info")
    return Upstream(
        base_url=root.as_uri(),
        root=root,
        bare=bare,
        fork_point=fork_point,
        main_head=main_head,
        pr_first=pr_first,
        pr_head=pr_head,
    )


def everything_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


async def checkout(upstream: Upstream, dest: Path, **kwargs: object) -> CheckoutResult:
    args: dict[str, object] = {
        "git_url_base": upstream.base_url,
        "owner": "acme",
        "repo": "taxonomy",
        "pr_number": 7,
        "base_branch": "main",
        "expected_head_sha": None,
        "dest": dest,
        "token": None,
        "timeout": 60,
    }
    args.update(kwargs)
    owner, repo, number = args.pop("owner"), args.pop("repo"), args.pop("pr_number")
    pull = RepoRef(str(owner), str(repo)).pull(int(str(number)))
    return await checkout_pull_request(CheckoutRequest(pull=pull, **args))  # type: ignore[arg-type]


async def test_checkout_over_file_url(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    result = await checkout_pull_request(
        CheckoutRequest(
            git_url_base=upstream.base_url,
            pull=RepoRef("acme", "taxonomy").pull(7),
            base_branch="main",
            expected_head_sha=upstream.pr_head,
            dest=dest,
            token=None,
        )
    )
    assert result.path == dest
    assert result.head_sha == upstream.pr_head
    assert result.base_ref == "origin/main"
    assert git_out(dest, "rev-parse", "HEAD") == upstream.pr_head
    assert git_out(dest, "rev-parse", "origin/main") == upstream.main_head
    assert git_out(dest, "merge-base", "origin/main", "HEAD") == upstream.fork_point
    changed = git_out(dest, "diff", "--name-only", "origin/main...HEAD").splitlines()
    assert changed == ["knowledge/science/attribution.txt", "knowledge/science/qna.yaml"]
    assert git_out(dest, "tag") == ""  # no tags fetched
    assert git_out(dest, "status", "--porcelain") == ""
    assert not (dest / ".git" / "hooks").exists()


async def test_expected_head_already_superseded_checks_out_expected(
    upstream: Upstream, tmp_path: Path
) -> None:
    result = await checkout(upstream, tmp_path / "ws", expected_head_sha=upstream.pr_first)
    assert result.head_sha == upstream.pr_first
    assert git_out(tmp_path / "ws", "rev-parse", "HEAD") == upstream.pr_first


@pytest.mark.parametrize("which", ["main_head", "unknown"])
async def test_pull_request_moved(upstream: Upstream, tmp_path: Path, which: str) -> None:
    expected = upstream.main_head if which == "main_head" else "0123456789" * 4
    with pytest.raises(GitError, match="moved"):
        await checkout(upstream, tmp_path / "ws", expected_head_sha=expected)


async def test_missing_pull_request(upstream: Upstream, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="git fetch failed") as caught:
        await checkout(upstream, tmp_path / "ws", pr_number=8)
    assert "refs/pull/8/head" in str(caught.value)


async def test_bad_inputs_rejected_before_git_runs(upstream: Upstream, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / "leftover").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        await checkout(upstream, dest)
    with pytest.raises(ValueError, match="sha"):
        await checkout(upstream, tmp_path / "a", expected_head_sha="HEAD")
    with pytest.raises(ValueError, match="branch"):
        await checkout(upstream, tmp_path / "b", base_branch="--upload-pack=touch /tmp/x")
    with pytest.raises(ValueError, match="owner"):
        await checkout(upstream, tmp_path / "c", owner="../acme")
    assert not (tmp_path / "a").exists()


async def test_checkout_over_http_sends_token_only_in_header(
    upstream: Upstream, tmp_path: Path
) -> None:
    async with DumbHttpServer(upstream.root) as (base_url, auth_seen):
        dest = tmp_path / "ws"
        result = await checkout(upstream, dest, git_url_base=base_url, token=TOKEN)
    assert result.head_sha == upstream.pr_head
    expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert auth_seen and set(auth_seen) == {expected}
    stored = everything_under(dest / ".git")
    assert TOKEN.encode() not in stored
    assert expected.split()[1].encode() not in stored


async def test_http_errors_never_show_the_token(upstream: Upstream, tmp_path: Path) -> None:
    async with DumbHttpServer(upstream.root) as (base_url, _):
        with pytest.raises(GitError) as caught:
            await checkout(
                upstream, tmp_path / "ws", git_url_base=base_url, repo="nope", token=TOKEN
            )
    assert TOKEN not in str(caught.value)


async def test_run_git_sanitises_secrets(tmp_path: Path) -> None:
    code = f"import sys; print('fatal: auth {TOKEN} rejected', file=sys.stderr); sys.exit(128)"
    with pytest.raises(GitError) as caught:
        await run_git(
            [sys.executable, "-c", code], cwd=tmp_path, env={}, timeout=30, secrets=[TOKEN]
        )
    assert str(caught.value).endswith("failed (exit 128): fatal: auth *** rejected")


async def test_timeout_kills_a_hung_git(upstream: Upstream, tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pidfile = tmp_path / "git.pid"
    fake = bindir / "git"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import os, subprocess, time\n"
        "helper = subprocess.Popen(['sleep', '1000'])\n"
        f"open({str(pidfile)!r}, 'w').write(f'{{os.getpid()}} {{helper.pid}}')\n"
        "time.sleep(1000)\n"
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    with pytest.raises(GitError, match="git init timed out"):
        await checkout(upstream, tmp_path / "ws", timeout=1.5, base_env=env)
    pgid, helper = map(int, pidfile.read_text().split())
    for _ in range(200):  # SIGKILL is sent; wait for the kernel to finish the exits
        if not is_alive(pgid) and not is_alive(helper):
            break
        await asyncio.sleep(0.05)
    assert not is_alive(pgid)
    assert not is_alive(helper)


def is_alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (dead but not yet reaped by init)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# Pure parts: names, URLs, argv and environment.

OWNERS = {
    "acme": True,
    "a": True,
    "A-1-b": True,
    "x" * 39: True,
    "": False,
    "-acme": False,
    "x" * 40: False,
    "ac me": False,
    "ac/me": False,
    "a_b": False,
    "a.b": False,
    "..": False,
    "acme\n": False,
    "acmé": False,
}
REPOS = {
    "taxonomy": True,
    "a.b_c-d": True,
    ".github": True,
    "x" * 100: True,
    "...": True,
    "": False,
    ".": False,
    "..": False,
    "a/b": False,
    "a b": False,
    "x" * 101: False,
    "tax\n": False,
    "tax%2f": False,
    "tax;rm": False,
}
BRANCHES = {
    "main": True,
    "feature/x": True,
    "release-1.0": True,
    "user@host": True,
    "foo.lock.bar": True,
    "ünïcödé": True,
    "a_b+c,d=e": True,
    "": False,
    "-main": False,
    "--upload-pack=touch /tmp/x": False,
    "/main": False,
    "main/": False,
    "a//b": False,
    "a..b": False,
    "a.": False,
    ".hidden": False,
    "x/.y": False,
    "a.lock": False,
    "a/b.lock/c": False,
    "a b": False,
    "a\tb": False,
    "a\nb": False,
    "a\x7f": False,
    "a\x00b": False,
    "a~1": False,
    "a^": False,
    "a:b": False,
    "a?": False,
    "a*": False,
    "a[b": False,
    "a\\b": False,
    "a@{1}": False,
    "@{-1}": False,
    "@": False,
    "HEAD": False,
    "refs/heads/../x": False,
}


@pytest.mark.parametrize(("owner", "ok"), OWNERS.items())
def test_validate_owner(owner: str, ok: bool) -> None:
    check(lambda: validate_repo_name(RepoRef(owner, "taxonomy")), ok)


@pytest.mark.parametrize(("repo", "ok"), REPOS.items())
def test_validate_repo(repo: str, ok: bool) -> None:
    check(lambda: validate_repo_name(RepoRef("acme", repo)), ok)


@pytest.mark.parametrize(("name", "ok"), BRANCHES.items())
def test_validate_branch_name(name: str, ok: bool, tmp_path: Path) -> None:
    check(lambda: validate_branch_name(name), ok)
    if ok:  # never looser than git itself
        real = subprocess.run(
            ["git", "check-ref-format", "--branch", name], cwd=tmp_path, capture_output=True
        )
        assert real.returncode == 0


def check(call: Callable[[], None], ok: bool) -> None:
    if ok:
        call()
    else:
        with pytest.raises(ValueError):
            call()


def test_repo_url() -> None:
    assert repo_url("https://github.com", RepoRef("acme", "taxonomy")) == (
        "https://github.com/acme/taxonomy.git"
    )
    assert (
        repo_url("http://127.0.0.1:8080/git/", RepoRef("a", "b"))
        == "http://127.0.0.1:8080/git/a/b.git"
    )
    assert repo_url("file:///srv/git", RepoRef("a", "b")) == "file:///srv/git/a/b.git"
    for bad_base in ["ssh://github.com", "ext::sh -c touch% /tmp/x", "https://u:p@github.com"]:
        with pytest.raises(ValueError):
            repo_url(bad_base, RepoRef("a", "b"))
    with pytest.raises(ValueError):
        repo_url("https://github.com", RepoRef("a", "../b"))


def test_git_env_https_with_token(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "HTTPS_PROXY": "http://proxy:3128",
        "ILAB_BOT_GITHUB_APP_PRIVATE_KEY": "secret",
        "GIT_DIR": "/elsewhere",
        "GIT_CONFIG_PARAMETERS": "'core.hookspath'='/tmp/evil'",
        "HOME": "/home/bot",
    }
    env = git_env(TOKEN, base, git_url_base="https://github.com", home=tmp_path)
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert config["http.https://github.com/.extraHeader"] == auth_header(TOKEN)
    assert auth_header(TOKEN) == "Authorization: Basic " + base64.b64encode(
        f"x-access-token:{TOKEN}".encode()
    ).decode("ascii")
    assert config["core.hooksPath"] == "/dev/null"
    assert config["protocol.allow"] == "never"
    assert config["protocol.https.allow"] == "always"
    assert config["protocol.ext.allow"] == "never"
    assert config["transfer.fsckObjects"] == "true"
    assert "protocol.file.allow" not in config
    assert env["PATH"] == "/usr/bin"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["HOME"] == str(tmp_path)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_ASKPASS"] == ""
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    for leaked in ["ILAB_BOT_GITHUB_APP_PRIVATE_KEY", "GIT_DIR", "GIT_CONFIG_PARAMETERS"]:
        assert leaked not in env
    assert [name for name, value in env.items() if TOKEN in value or "Basic" in value] == [
        f"GIT_CONFIG_VALUE_{len(config) - 1}"
    ]


def test_git_env_file_base_never_carries_the_token(tmp_path: Path) -> None:
    env = git_env(TOKEN, {"PATH": "/bin"}, git_url_base="file:///srv", home=tmp_path)
    values = " ".join(env.values())
    assert "Authorization" not in values
    assert TOKEN not in values
    keys = [env[f"GIT_CONFIG_KEY_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))]
    assert "protocol.file.allow" in keys
    assert "protocol.https.allow" not in keys


def test_argv_builders() -> None:
    sha = "a" * 40
    every = [
        init_argv(),
        remote_add_argv("https://github.com/acme/taxonomy.git"),
        fetch_argv("main", 7),
        rev_parse_argv("refs/remotes/origin/pr/7"),
        is_ancestor_argv(sha, "b" * 40),
        checkout_argv(sha),
    ]
    assert all(argv[0] == "git" for argv in every)
    assert all(TOKEN not in " ".join(argv) for argv in every)
    assert fetch_argv("release/1.x", 12)[-3:] == [
        "origin",
        "+refs/heads/release/1.x:refs/remotes/origin/release/1.x",
        "+refs/pull/12/head:refs/remotes/origin/pr/12",
    ]
    assert "--depth" not in " ".join(fetch_argv("main", 7))
    assert checkout_argv(sha) == ["git", "checkout", "--quiet", "--detach", sha, "--"]
    with pytest.raises(ValueError):
        fetch_argv("main", 0)
    with pytest.raises(ValueError):
        checkout_argv("--orphan=x")


# A static file server over the bare repositories: git falls back to the dumb HTTP protocol.


class DumbHttpServer:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._auth: list[str] = []
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self._auth.append(request.headers.get("Authorization", ""))
        path = (self._root / request.match_info["tail"]).resolve()
        if not path.is_relative_to(self._root) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    async def __aenter__(self) -> tuple[str, list[str]]:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}", self._auth

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

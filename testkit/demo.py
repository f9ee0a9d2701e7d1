"""`make demo`: the real bot on embedded defaults, one taxonomy PR played through it.

Stands up what a deployment would get from outside (Redis, GitHub, a taxonomy repository with
a PR, and `ilab` when no real one is installed), runs the real server, dispatcher and worker,
comments `@instructlab-bot generate` and prints the conversation as a contributor sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import redis.asyncio as aioredis
import structlog

from instruct_lab_bot.adapters.sandbox import SandboxUnavailable
from instruct_lab_bot.core.settings import Secret, Settings
from instruct_lab_bot.core.webhooks import sign
from instruct_lab_bot.services import logs

from .github_emulator import GitHubEmulator, generate_app_key
from .harness import RunningBot, run_bot
from .openapi import OpenAPISpec
from .payloads import pr_comment, pr_pushed
from .redis_server import RedisUnavailable, running_redis
from .taxonomy import (
    TaxonomyRemote,
    add_pr_commit,
    build_taxonomy_remote,
    default_skill_seeds,
    file_at,
    leaf_files,
    skill_qna,
)
from .testdata import TestDataPaths, ensure_testdata, load_webhook_example

OWNER, REPO, PR = "instructlab", "taxonomy", 42
REVIEWER = "reviewer"  # has write access: may run `generate` (the default policy)
SKILL_DIR = "compositional_skills/linguistics/synonyms/formal_register"
LINK = re.compile(r"\]\((http[^)\s]+)\)")


def say(text: str = "") -> None:
    print(text, flush=True)


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with contextlib.closing(socket.socket()) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


async def redis_ready(url: str) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        for _ in range(50):
            with contextlib.suppress(OSError, aioredis.ConnectionError):
                if await client.ping():
                    return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await client.aclose()


def pick_ilab() -> tuple[str, ...]:
    real = shutil.which("ilab")
    if real:
        say(f"ilab:      the real `ilab` at {real}")
        return (real,)
    standin = Path(sys.executable).with_name("ilab-standin")
    say("ilab:      no `ilab` on PATH, so this demo uses the stand-in `ilab-standin`: it takes")
    say("           the real flags, prints and writes files like ilab, but no model runs.")
    os.environ.setdefault("ILAB_STANDIN_DURATION", "6")
    os.environ.setdefault("ILAB_STANDIN_CONFIG", "optional")  # the worker prepares none yet
    return (str(standin),)


@dataclass
class Sandbox:
    """Everything standing in for the outside world, and bot settings pointing at it."""

    gh: GitHubEmulator
    settings: Settings
    paths: TestDataPaths
    var: Path
    remote: TaxonomyRemote


@contextlib.asynccontextmanager
async def sandbox(
    var: Path,
    *,
    ilab_command: tuple[str, ...],
    progress_interval: float = 2.0,
    log_file: TextIO | None = None,
) -> AsyncIterator[Sandbox]:
    """Redis, a GitHub sandbox with a taxonomy PR, and settings for a bot on them."""
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    paths = ensure_testdata(Path.cwd() / ".cache")
    spec = OpenAPISpec.load(paths.openapi)
    key = generate_app_key()
    remote = build_taxonomy_remote(
        var / "git",
        OWNER,
        REPO,
        base_files={"README.md": "# Taxonomy\n"},
        pr_number=PR,
        pr_files=leaf_files(SKILL_DIR, skill_qna(default_skill_seeds())),
        head_ref="formal-register",
    )
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("ILAB_BOT_REDIS_URL", "")
        if redis_url and await redis_ready(redis_url):
            say(f"redis:     {redis_url} (from ILAB_BOT_REDIS_URL)")
        else:
            try:
                redis_url = stack.enter_context(running_redis(var / "redis")).url
            except RedisUnavailable as exc:
                raise SystemExit(f"{exc}; `make demo` installs it") from None
            say(f"redis:     started a private redis-server at {redis_url}")
        async with GitHubEmulator(spec, app_id=key.app_id, public_key_pem=key.public_key_pem) as gh:
            say(
                f"github:    a local GitHub sandbox at {gh.url} (checks every call against "
                "GitHub's OpenAPI description)"
            )
            gh.add_repo(OWNER, REPO)
            gh.add_pull(
                OWNER,
                REPO,
                PR,
                head_sha=remote.head_sha,
                head_ref=remote.head_ref,
                base_sha=remote.base_sha,
                files=list(remote.changed_files),
                title="Add a skill: formal register synonyms",
                user_login="contributor",
            )
            for path in remote.changed_files:  # what validation reads through the contents API
                text = file_at(remote, remote.head_sha, path)
                gh.set_content(OWNER, REPO, path, text, ref=remote.head_sha)
            gh.set_permission(OWNER, REPO, REVIEWER, "write")
            port = free_port(int(os.environ.get("ILAB_BOT_PORT", "8080")))
            settings = Settings(
                github_app_id=str(key.app_id),
                github_private_key=Secret(key.private_key_pem),
                webhook_secret=Secret(secrets.token_hex(32)),
                github_api_url=gh.url,
                github_git_url=remote.git_url_base,
                redis_url=redis_url,
                artifacts_url=f"file://{var.parent / 'artifacts'}",
                public_url=f"http://127.0.0.1:{port}",
                host="127.0.0.1",
                port=port,
                ilab_command=ilab_command,
                generate_args=("--sdg-scale-factor", "3"),
                work_dir=var / "work",
                progress_interval=progress_interval,
                job_timeout=3600.0,
                ilab_env=("ILAB_STANDIN_*",),  # the stand-in's switches; nothing else passes
            )
            if log_file is None:
                log_file = stack.enter_context((var / "bot.log").open("w", encoding="utf-8"))
            logs.configure("json", settings.secrets(), stream=log_file)
            try:
                yield Sandbox(gh, settings, paths, var, remote)
            finally:
                structlog.reset_defaults()  # the log file closes with this sandbox


async def demo(keep_serving: bool) -> None:
    var = Path.cwd() / "var" / "demo"
    async with sandbox(var, ilab_command=pick_ilab()) as box, start_bot(box.settings) as bot:
        say(f"bot:       server + dispatcher at {bot.url}, one worker (logs: var/demo/bot.log)")
        say(
            "sandbox:   ilab runs in bubblewrap: own user and pid namespaces, no network, "
            "read-only root, only its job's folder writable, the App key and other jobs hidden"
        )
        say()
        comment = await play(box.gh, bot.webhook_url, box.settings, box.paths)
        await show_artifacts(comment)
        say(f"\nStatus page: {bot.url}/  (this PR: {bot.url}/repos/{OWNER}/{REPO}/pulls/{PR})")
        if keep_serving:
            say(f"\nThe bot keeps serving the links above at {bot.url}; Ctrl-C to stop.")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.Event().wait()
        else:
            say(STOPPED)


#: Without a terminal (CI, a pipe) the demo ends after the PR: say so, or the links look alive.
STOPPED = (
    "\nThe demo is over and the bot has stopped: the links above no longer work.\n"
    "To keep it serving them, run it from a terminal (`make demo`), or ask for it:\n"
    "    make demo DEMO_ARGS=--keep-serving\n"
    "Everything listens on 127.0.0.1 only, so only this machine can open them."
)


@contextlib.asynccontextmanager
async def start_bot(settings: Settings) -> AsyncIterator[RunningBot]:
    """The bot, or a clear exit when ilab's sandbox cannot run here."""
    try:
        async with run_bot(settings) as bot:
            yield bot
    except SandboxUnavailable as exc:
        raise SystemExit(f"demo: {exc}\n(`make demo` installs bubblewrap)") from None


def reviewer_comment(gh: GitHubEmulator, example: dict[str, Any], body: str) -> dict[str, Any]:
    """`REVIEWER` comments `body` on the demo PR: the comment is added to the emulator (the bot
    reacts to it and reads it back) and the `issue_comment.created` delivery for it returned,
    built from the real `example`. One place for the demo, the benchmarks and the tests."""
    seeded = gh.add_comment(OWNER, REPO, PR, body, user_login=REVIEWER)
    return pr_comment(
        example,
        body=body,
        owner=OWNER,
        repo=REPO,
        pr_number=PR,
        comment_id=int(seeded["id"]),
        login=REVIEWER,
        installation_id=gh.installation_id,
    )


def push_new_head(box: Sandbox, example: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The contributor pushes a new commit to the demo PR (its files touched again, so the
    head is new while the change is the same): the emulator shows it; returns the new head
    sha and the `pull_request.synchronize` delivery GitHub sends for it (from `example`)."""
    remote = box.remote
    files = {path: file_at(remote, remote.head_sha, path) for path in remote.changed_files}
    sha = add_pr_commit(remote, PR, files)
    box.remote = replace(remote, head_sha=sha)
    box.gh.update_pull(OWNER, REPO, PR, head_sha=sha)
    for path, text in files.items():
        box.gh.set_content(OWNER, REPO, path, text, ref=sha)
    payload = pr_pushed(
        example,
        head_sha=sha,
        head_ref=remote.head_ref,
        owner=OWNER,
        repo=REPO,
        pr_number=PR,
        installation_id=box.gh.installation_id,
    )
    return sha, payload


async def play(
    gh: GitHubEmulator, webhook_url: str, settings: Settings, paths: TestDataPaths
) -> dict[str, Any]:
    """A reviewer comments the command; print what follows as the PR shows it; return the reply."""
    body = f"Seed examples look fine, let's see the data.\n\n@{settings.username} generate"
    example = load_webhook_example(paths, "issue_comment", action="created")
    payload = reviewer_comment(gh, example, body)
    data = json.dumps(payload).encode()
    say(f"── {OWNER}/{REPO} #{PR}: Add a skill: formal register synonyms " + "─" * 10)
    say(f"{REVIEWER} commented:\n    {body.replace(chr(10), chr(10) + '    ')}")
    async with aiohttp.ClientSession() as session:
        headers = {
            "X-GitHub-Event": "issue_comment",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(data, settings.webhook_secret.value.encode()),
            "Content-Type": "application/json",
        }
        started = time.monotonic()
        async with session.post(webhook_url, data=data, headers=headers) as response:
            say(
                f"webhook:   {response.status} {await response.text()} "
                f"({(time.monotonic() - started) * 1000:.1f} ms)"
            )
    comment = await follow(gh, payload["comment"]["id"])
    say("\ninstruct-lab-bot[bot] commented:")
    for line in comment["body"].splitlines():
        say("    " + line)
    return comment


async def show_artifacts(comment: dict[str, Any]) -> None:
    say("\nArtifacts (each link fetched once):")
    async with aiohttp.ClientSession() as session:
        for url in LINK.findall(comment["body"]):
            async with session.get(url) as response:
                size = len(await response.read())
            say(f"    {response.status} {size:>7} B  {url}")


async def follow(gh: GitHubEmulator, comment_id: int) -> dict[str, Any]:
    """Print reactions and check-run changes as they happen; return the bot's reply."""
    shown: set[str] = set()

    def bot_reply() -> dict[str, Any] | None:
        return next((c for c in gh.comments(OWNER, REPO, PR) if c["user"]["type"] == "Bot"), None)

    async with asyncio.timeout(900):
        while True:
            for reaction in gh.reactions(OWNER, REPO, comment_id):
                emoji = {"eyes": "👀"}.get(reaction["content"], reaction["content"])
                line = f"instruct-lab-bot[bot] reacted {emoji}"
                if line not in shown:
                    shown.add(line)
                    say(line)
            for run in gh.check_runs(OWNER, REPO):
                for update in gh.check_run_history(run["id"]):
                    title = (update.get("output") or {}).get("title", "")
                    status = update.get("conclusion") or update.get("status") or ""
                    line = f"check run {run['name']}: {status:<11} {title}"
                    if line not in shown:
                        shown.add(line)
                        say(line)
            reply = bot_reply()
            if reply is not None:
                return reply
            await gh.wait_for(lambda: True)
            await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--keep-serving",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty(),
        help="keep the bot running after the PR is played (default: on a TTY)",
    )
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo(args.keep_serving))


if __name__ == "__main__":
    main()

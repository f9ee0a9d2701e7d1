"""`instruct-lab-bot app create`: register the bot's GitHub App with the manifest flow.

A page on loopback posts the manifest to GitHub; GitHub sends the admin's browser back to
`/callback?code=…&state=…`; the code is converted into the App's id, private key and webhook
secret, which go straight into a 0600 `.env` (and key file), never to the terminal or a log.
The `state` is a random value of this run only: a callback without it is refused, so another
page cannot make this process write an App it did not ask for.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from instruct_lab_bot.adapters.github import GitHubError
from instruct_lab_bot.adapters.github.onboarding import convert_manifest_code
from instruct_lab_bot.adapters.private_files import FileExists, write_private
from instruct_lab_bot.core import app_manifest
from instruct_lab_bot.core.app_manifest import AppCredentials
from instruct_lab_bot.core.pages.app_setup_html import done_page, error_page, form_page

LOOPBACK = "127.0.0.1"
CODE_LIFETIME = 3600.0  # GitHub's manifest codes expire after an hour


class AppSetupError(Exception):
    """Why no App was written (safe to print: it never holds a secret)."""


@dataclass(frozen=True)
class AppSetupOptions:
    """Where GitHub is, what to register, and where the credentials go."""

    github_url: str  # the website: https://github.com or an Enterprise Server
    api_url: str  # https://api.github.com or https://<ghes>/api/v3
    public_url: str  # the bot's public base URL (webhooks go to <public_url>/api/github/hook)
    env_path: Path
    name: str = app_manifest.DEFAULT_APP_NAME
    org: str | None = None
    webhook_url: str | None = None  # e.g. a relay channel's URL during development
    teams: bool = False
    key_file: Path | None = None
    force: bool = False
    port: int = 0
    wait: float = CODE_LIFETIME


class _Flow:
    """One run's state, the pages and the callback."""

    def __init__(self, options: AppSetupOptions, session: aiohttp.ClientSession) -> None:
        self.options = options
        self.session = session
        self.state = secrets.token_urlsafe(32)
        self.result: asyncio.Future[AppCredentials] = asyncio.get_running_loop().create_future()
        self.redirect_url = ""

    async def form(self, _request: web.Request) -> web.Response:
        opts = self.options
        public = opts.public_url.rstrip("/")
        manifest = app_manifest.manifest(
            name=opts.name,
            public_url=public,
            webhook_url=opts.webhook_url or public + app_manifest.WEBHOOK_PATH,
            redirect_url=self.redirect_url,
            teams=opts.teams,
        )
        action = app_manifest.new_app_url(opts.github_url, opts.org, self.state)
        return _html(form_page(action, manifest))

    async def callback(self, request: web.Request) -> web.Response:
        if self.result.done():
            return _html(error_page("This run already finished."), status=409)
        try:
            code = app_manifest.check_callback(dict(request.query), self.state)
        except ValueError as exc:
            return _html(error_page(str(exc)), status=400)
        try:
            creds = await self._convert_and_write(code)
        except AppSetupError as exc:
            self.result.set_exception(exc)
            return _html(error_page(str(exc)), status=502)
        self.result.set_result(creds)
        return _html(done_page(creds, str(self.options.env_path)))

    async def _convert_and_write(self, code: str) -> AppCredentials:
        opts = self.options
        try:
            data = await convert_manifest_code(self.session, opts.api_url, code)
            creds = AppCredentials.from_conversion(data)
        except (GitHubError, ValueError) as exc:
            raise AppSetupError(str(exc)) from None
        try:
            if opts.key_file is not None:
                write_private(opts.key_file, creds.private_key.value, force=opts.force)
            key_path = str(opts.key_file) if opts.key_file is not None else None
            env_text = app_manifest.env_lines(creds, key_file=key_path)
            write_private(opts.env_path, env_text, force=opts.force)
        except (FileExists, OSError) as exc:
            raise AppSetupError(f"the credentials were not written: {exc}") from None
        return creds


def refuse_existing(options: AppSetupOptions) -> None:
    """Fail before anything is registered when the files exist and `force` is not set."""
    if options.force:
        return
    for path in (options.env_path, options.key_file):
        if path is not None and (path.exists() or path.is_symlink()):
            raise AppSetupError(f"{path} exists: use --force to replace it")


async def create_github_app(
    options: AppSetupOptions, announce: Callable[[str], None]
) -> AppCredentials:
    """Serve the page on loopback, `announce` its URL, and return once the App is written."""
    refuse_existing(options)
    async with aiohttp.ClientSession() as session:
        flow = _Flow(options, session)
        app = web.Application()
        app.router.add_get("/", flow.form)
        app.router.add_get(app_manifest.CALLBACK_PATH, flow.callback)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, options.port))  # port 0: any free one, known before serving
            await web.SockSite(runner, sock).start()
            base = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
            flow.redirect_url = base + app_manifest.CALLBACK_PATH
            announce(base + "/")
            try:
                return await asyncio.wait_for(asyncio.shield(flow.result), options.wait)
            except TimeoutError:
                raise AppSetupError("no answer from GitHub in time; run it again") from None
        finally:
            await runner.cleanup()


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",  # the callback URL holds the code
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action *",
        },
    )

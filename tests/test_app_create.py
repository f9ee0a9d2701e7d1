"""`instruct-lab-bot app create`: the GitHub App manifest flow against the GitHub emulator.

The CLI runs as a real process; the test plays the admin's browser over HTTP (and once in
headless Chromium): open the local page, post its form to the emulator's
`/settings/apps/new`, follow GitHub's redirect back. The emulator validates the manifest and
`POST /app-manifests/{code}/conversions` against GitHub's OpenAPI description, then answers as
the new App, so the written `.env` is proven by a JWT GitHub accepts.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from instruct_lab_bot.adapters.github.onboarding import app_jwt, get_app
from instruct_lab_bot.adapters.private_files import FileExists, write_private
from instruct_lab_bot.cli import load_settings
from instruct_lab_bot.core import app_manifest
from testkit.github_emulator import GitHubEmulator
from testkit.github_manifest import ManifestFlow
from testkit.openapi import OpenAPISpec

CLI = [sys.executable, "-m", "instruct_lab_bot.cli"]


class _Form(HTMLParser):
    """The form's action and its hidden `manifest` value, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.manifest = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action") or ""
        if tag == "input" and values.get("name") == "manifest":
            self.manifest = values.get("value") or ""


async def start_cli(
    tmp_path: Path, github: GitHubEmulator, *extra: str
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ILAB_BOT_")}
    env["ILAB_BOT_PUBLIC_URL"] = "https://bot.example.org"
    return await asyncio.create_subprocess_exec(
        *CLI,
        "app",
        "create",
        "--github-url",
        github.url,
        "--api-url",
        github.url,
        *extra,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def page_url(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = (await process.stdout.readline()).decode()
    assert line.startswith("Open http://127.0.0.1:"), line
    return line.split()[1]


async def test_manifest_flow_writes_a_private_env_that_github_accepts(
    tmp_path: Path, github: GitHubEmulator
) -> None:
    process = await start_cli(tmp_path, github, "--org", "instructlab")
    url = await page_url(process)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            assert response.status == 200
            form = _Form()
            form.feed(await response.text())
        manifest = json.loads(form.manifest)
        assert form.action.startswith(f"{github.url}/organizations/instructlab/settings/apps/new")
        assert manifest["hook_attributes"]["url"] == "https://bot.example.org/api/github/hook"
        assert manifest["public"] is False
        assert manifest["default_permissions"] == app_manifest.permissions(teams=False)
        assert "members" not in manifest["default_permissions"]
        assert sorted(manifest["default_events"]) == ["check_run", "issue_comment", "pull_request"]

        async with session.post(
            form.action, data={"manifest": form.manifest}, allow_redirects=False
        ) as response:
            assert response.status == 302
            callback = response.headers["Location"]
        assert callback.startswith(manifest["redirect_url"] + "?")

        # A callback that is not the answer to this run's form is refused; the run goes on.
        forged = callback.replace("state=", "state=x")
        async with session.get(forged) as response:
            assert response.status == 400
            assert "state" in await response.text()

        async with session.get(callback) as response:
            assert response.status == 200
            done = await response.text()
        stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()

        env_file = tmp_path / ".env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        settings = load_settings({}, dotenv=env_file)
        key = github.created_app_key
        assert key is not None and settings.github_app_id == str(key.app_id)
        assert settings.github_private_key.value.strip() == key.private_key_pem.strip()
        for secret in settings.secrets():  # never printed, never on the page
            for text in (stdout.decode(), stderr.decode(), done):
                pieces = [secret, *secret.strip().splitlines()[1:2]]  # a PEM's first key line
                assert not [p for p in pieces if p in text]
        app = await get_app(
            session, github.url, app_jwt(settings.github_app_id, key.private_key_pem)
        )
        assert app["id"] == key.app_id
    assert [c.route for c in github.calls] == ["/app-manifests/{code}/conversions", "/app"]

    # The code converts once: a second visit is refused by the finished run (no process).
    assert github.manifests.pending == {}


async def test_existing_env_is_never_overwritten_without_force(
    tmp_path: Path, github: GitHubEmulator
) -> None:
    (tmp_path / ".env").write_text("ILAB_BOT_PORT=9000\n")
    process = await start_cli(tmp_path, github)
    stdout, stderr = await process.communicate()
    assert process.returncode == 1
    assert ".env exists: use --force" in stderr.decode()
    assert stdout == b""
    assert (tmp_path / ".env").read_text() == "ILAB_BOT_PORT=9000\n"
    assert github.calls == []


async def test_key_file_and_force_replace_both_files_privately(
    tmp_path: Path, github: GitHubEmulator
) -> None:
    (tmp_path / ".env").write_text("old\n")
    process = await start_cli(tmp_path, github, "--force", "--key-file", "app.pem")
    url = await page_url(process)
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as response:
            form = _Form()
            form.feed(await response.text())
        async with session.post(form.action, data={"manifest": form.manifest}) as response:
            assert response.status == 200  # followed GitHub's redirect to the done page
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    text = (tmp_path / ".env").read_text()
    assert "ILAB_BOT_GITHUB_PRIVATE_KEY_FILE=app.pem" in text and "PRIVATE KEY" not in text
    for name in (".env", "app.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "app.pem"]  # no temp left


def test_private_file_is_created_0600_even_with_an_open_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "a", "x")
        with pytest.raises(FileExists):
            write_private(tmp_path / "a", "y")
        (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(FileExists):
            write_private(tmp_path / "link", "y")  # a planted symlink is not followed
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600
    assert (tmp_path / "a").read_text() == "x"
    assert not (tmp_path / "elsewhere").exists()


def test_callback_needs_this_runs_state_and_a_code() -> None:
    state = "s" * 43
    assert app_manifest.check_callback({"code": "abc", "state": state}, state) == "abc"
    for query in ({"code": "abc"}, {"code": "abc", "state": "t" * 43}, {"state": state}):
        with pytest.raises(ValueError):
            app_manifest.check_callback(query, state)


def test_urls_for_user_org_and_enterprise_apps() -> None:
    assert app_manifest.new_app_url("https://github.com", None, "st") == (
        "https://github.com/settings/apps/new?state=st"
    )
    assert app_manifest.new_app_url("https://ghe.example/", "my-org", "st") == (
        "https://ghe.example/organizations/my-org/settings/apps/new?state=st"
    )
    with pytest.raises(ValueError):
        app_manifest.new_app_url("https://github.com", "../evil", "st")


def test_team_gates_add_members_read_and_the_emulator_checks_events(
    openapi_spec: OpenAPISpec,
) -> None:
    flow = ManifestFlow(openapi_spec)
    good: dict[str, Any] = app_manifest.manifest(
        name="b",
        public_url="https://b",
        webhook_url="https://b/h",
        redirect_url="http://l/c",
        teams=True,
    )
    assert good["default_permissions"]["members"] == "read"
    assert flow.problems(good) == []
    bad = {**good, "default_permissions": {"issues": "admin"}, "default_events": ["push"]}
    assert flow.problems(bad) == [
        "default_permissions.issues: 'admin' is not a permission level",
        "default_events: 'push' needs the contents permission",
    ]


async def test_the_page_registers_the_app_in_headless_chromium(
    tmp_path: Path, github: GitHubEmulator
) -> None:
    from playwright.async_api import async_playwright

    from tests.test_status_browser import CHROMIUM

    process = await start_cli(tmp_path, github)
    url = await page_url(process)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        page = await browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(url)
        await page.click("#register")  # posts to GitHub, which sends the browser back
        await page.wait_for_selector("text=registered")
        await browser.close()
    _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert errors == []  # no CSP report: the form may post to GitHub and come back
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600

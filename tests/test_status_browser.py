"""The status page in a real headless Chromium (Debian's `chromium`, driven by Playwright).

Proves what an HTML string test cannot: the page renders and reads right without JavaScript,
untrusted text stays text under the real CSP, nothing overflows a phone screen, and the rows
follow a real job from running to done. Screenshots at desktop and phone sizes are kept in the
test's tmp dir (and copied to `$STATUS_SCREENSHOTS` when set, e.g. `docs/images` or CI
artifacts).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Page,
    ViewportSize,
    async_playwright,
)

from testkit.harness import run_bot
from tests.fixtures.world import World
from tests.test_status import (  # noqa: F401 - fixtures shared with the HTTP tests
    NASTY_REF,
    PRIVATE_REPO,
    Seeded,
    StatusApiSpec,
    api_spec_fixture,
    public_server_fixture,
    queue_fixture,
    seeded_fixture,
    serve_status,
    wait_for_state,
)

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the status page tests need Debian's Chromium. Run "
            "`make test` (it installs it) or `apt-get install -y chromium`. Never run "
            "`playwright install`: it downloads a browser."
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        await launched.close()


async def open_page(
    browser: Browser, *, phone: bool = False, javascript: bool = True
) -> tuple[Page, list[str]]:
    """A fresh page; the list collects console errors (CSP violations land there) and dialogs
    (an `alert` means injected markup ran)."""
    context = await browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        is_mobile=phone,
        has_touch=phone,
        java_script_enabled=javascript,
    )
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    async def on_dialog(dialog: Dialog) -> None:
        problems.append(f"dialog: {dialog.message}")
        await dialog.dismiss()

    page.on("console", on_console)
    page.on("dialog", on_dialog)
    return page, problems


async def screenshot(page: Page, folder: Path, name: str, *, full_page: bool = True) -> Path:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=full_page)
    target = os.environ.get("STATUS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)
    return path


async def no_horizontal_scroll(page: Page) -> bool:
    width = await page.evaluate("document.documentElement.scrollWidth")
    return bool(width <= await page.evaluate("window.innerWidth"))


async def test_front_page_without_javascript(
    browser: Browser, seeded: Seeded, public_server: TestServer
) -> None:
    page, problems = await open_page(browser, javascript=False)
    response = await page.goto(str(public_server.make_url("/")))
    assert response is not None and response.status == 200
    assert await page.title() == "instruct-lab-bot status"
    assert await page.locator("#queued tr.job").count() == 2
    assert await page.locator("#running tr.job").count() == 1
    assert await page.locator("#finished tr.job").count() == 4
    assert await page.locator("#workers tr.worker").count() == 1
    running = page.locator(f"#running-{seeded.ids['running']}")
    assert "instructlab/taxonomy#7" in await running.inner_text()
    assert await running.locator("progress").get_attribute("value") == "40"
    await page.locator(f"#queued-{seeded.ids['queued_1']} a").first.click()
    assert page.url.endswith("/repos/instructlab/taxonomy/pulls/9")
    assert await page.locator("#jobs tr.job").count() == 1
    assert problems == []
    await page.context.close()


async def test_front_page_desktop_and_phone(
    browser: Browser, seeded: Seeded, public_server: TestServer, tmp_path: Path
) -> None:
    url = str(public_server.make_url("/"))
    for phone in (False, True):
        page, problems = await open_page(browser, phone=phone)
        await page.goto(url)
        text = await page.locator("body").inner_text()
        # untrusted text is shown as text: no element was injected, nothing ran
        assert NASTY_REF in text and '<script>alert("x")</script>' in text
        assert await page.locator("main img, main script").count() == 0
        assert PRIVATE_REPO not in text and "hunter2" not in text
        assert text.count("1 job of a private repository is not shown.") == 3
        assert await no_horizontal_scroll(page)
        assert await page.locator("thead").first.is_visible() is not phone  # cards on a phone
        # the README's pair: exactly one screen at each size
        name = "status-phone" if phone else "status-desktop"
        await screenshot(page, tmp_path, name, full_page=False)
        assert problems == []
        await page.context.close()

    pr = str(public_server.make_url("/repos/instructlab/taxonomy/pulls/7"))
    page, problems = await open_page(browser, phone=True)
    await page.goto(pr)
    assert await page.locator("#builds tr.job").count() == 1
    assert await page.locator("#jobs tr.job").count() == 3
    assert await no_horizontal_scroll(page)
    await screenshot(page, tmp_path, "status-pr-phone")
    assert problems == []
    await page.context.close()


async def test_a_real_job_in_the_browser(
    browser: Browser,
    world: World,
    api_spec: StatusApiSpec,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ILAB_STANDIN_DURATION", "3")  # long enough to be seen running
    page, problems = await open_page(browser)
    phone, phone_problems = await open_page(browser, phone=True)
    async with serve_status(world.settings) as server, run_bot(world.settings) as bot:
        home = str(server.make_url("/"))
        pr = str(server.make_url("/repos/instructlab/taxonomy/pulls/7"))
        assert (await world.comment(bot))[0] == 202
        job_id = (await wait_for_state(server, api_spec, {"running"}))["jobs"][0]["id"]
        worker = bot.workers[0].name

        await page.goto(home)
        row = page.locator(f"#running-{job_id}")
        assert world.remote.head_sha[:7] in await row.inner_text()
        assert worker in await row.inner_text()
        assert worker in await page.locator("#workers tr.worker").inner_text()
        await screenshot(page, tmp_path, "job-running-desktop")
        await phone.goto(pr)
        assert await phone.locator(f"#jobs-{job_id}").get_attribute("data-state") == "running"
        await screenshot(phone, tmp_path, "job-running-pr-phone")

        await world.result_comment()
        await wait_for_state(server, api_spec, {"succeeded"})
        await page.goto(home)
        assert await page.locator(f"#finished-{job_id}").get_attribute("data-state") == (
            "succeeded"
        )
        assert await page.locator("#running tr.job").count() == 0
        await screenshot(page, tmp_path, "job-done-desktop")
        await phone.goto(pr)
        assert await phone.locator("#builds tr.job").count() == 1
        await screenshot(phone, tmp_path, "job-done-pr-phone")
        files = await phone.locator(f"#builds-{job_id} a.artifacts").get_attribute("href")
        assert files is not None
        opened = await phone.goto(files)  # the artifact index, served by the bot itself
        assert opened is not None and opened.status == 200
    assert problems == [] and phone_problems == []
    await page.context.close()
    await phone.context.close()

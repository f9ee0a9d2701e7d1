"""The chat page in a real headless Chromium (Debian's `chromium`, driven by Playwright): the
answer streams in token by token through the bot's proxy from a real OpenAI-compatible server,
the seed questions are one-click prompts, nothing breaks the page's CSP, it fits a phone, and a
closed PR's link explains itself. Screenshots go to the test's tmp dir (and to
`$STATUS_SCREENSHOTS` when set, e.g. `docs/images`)."""

from __future__ import annotations

import threading
from pathlib import Path

from playwright.async_api import Browser

from instruct_lab_bot.services.serving.proxy import CHAT
from tests.test_chat import PULL, chat_server
from tests.test_status_browser import (  # noqa: F401 - the session's browser fixture
    browser,
    no_horizontal_scroll,
    open_page,
    screenshot,
)

ANSWER = "The stand-in teacher's answer to: What is a seed?"


async def test_answers_stream_token_by_token_in_the_browser(
    browser: Browser,  # noqa: F811
    redis_url: str,
    tmp_path: Path,
) -> None:
    async with chat_server(redis_url, tmp_path) as chat:
        chat.backend.pause_stream = threading.Event()
        page, problems = await open_page(browser)
        response = await page.goto(chat.link)
        assert response is not None and response.status == 200
        header = await page.locator("header").inner_text()
        assert chat.record.train_job in header and "granite-7b-base" in header
        assert chat.record.data_job in header
        await page.locator("#seeds button", has_text="What is a seed?").click()
        answer = page.locator(".msg.assistant").last
        # the model has written one word and waits: the page already shows it
        await answer.filter(has_text="The").wait_for()
        assert (await answer.inner_text()).strip() == "The"
        assert await page.locator("#send").is_disabled()
        chat.backend.pause_stream.set()
        await page.locator(".msg.assistant", has_text=ANSWER).wait_for()
        assert await page.locator("#send").is_enabled()
        assert (await page.locator(".msg.user").inner_text()).strip() == "What is a seed?"
        await screenshot(page, tmp_path, "chat-desktop", full_page=False)

        # a typed follow-up carries the conversation
        await page.locator("#q").fill("And <b>why</b>?")
        await page.locator("#send").click()
        await page.locator(".msg.assistant", has_text="answer to: And <b>why</b>?").wait_for()
        assert await page.locator("main b").count() == 0  # shown as text
        server = chat.backend.server(PULL)
        assert server is not None
        last = server.state.requests[-1]["body"]
        assert [m["role"] for m in last["messages"]] == ["user", "assistant", "user"]
        assert problems == []
        await page.context.close()

        phone, phone_problems = await open_page(browser, phone=True)
        await phone.goto(chat.link)
        await phone.locator("#q").fill("Hello from a phone")
        await phone.locator("#q").press("Enter")
        await phone.locator(".msg.assistant", has_text="Hello from a phone").wait_for()
        assert await no_horizontal_scroll(phone)
        await screenshot(phone, tmp_path, "chat-phone", full_page=False)
        assert phone_problems == []
        await phone.context.close()


async def test_limits_and_a_closed_pr_in_the_browser(
    browser: Browser,  # noqa: F811
    redis_url: str,
    tmp_path: Path,
) -> None:
    async with chat_server(redis_url, tmp_path, chat_user_rate=1) as chat:
        page, problems = await open_page(browser)
        await page.goto(chat.link)
        await page.locator("#q").fill("first")
        await page.locator("#send").click()
        await page.locator(".msg.assistant", has_text="answer to: first").wait_for()
        await page.locator("#q").fill("second")
        await page.locator("#send").click()
        await page.locator(".msg.error", has_text="too many requests").wait_for()
        await chat.server.app[CHAT].pull_closed(PULL)
        closed = await page.goto(chat.link)
        assert closed is not None and closed.status == 410
        assert "closed or merged" in await page.locator("body").inner_text()
        # the browser logs the 429 and the 410 themselves; nothing else went wrong
        assert [p for p in problems if "429" not in p and "410" not in p] == []
        await page.context.close()

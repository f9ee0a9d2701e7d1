"""The status page's "models being served": the backend's models joined with the bot's chat
records, under the status page's privacy rule (`show_private`: a signed-in viewer)."""

from __future__ import annotations

import time

import structlog
from redis.exceptions import RedisError

from instruct_lab_bot.core.chat_access import api_base
from instruct_lab_bot.core.pages.served_html import (
    ServedRow,
    pr_served_section,
    served_section,
    visible,
)
from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.services.serving.backend import ServingError
from instruct_lab_bot.services.serving.chat import ChatService

log = structlog.get_logger(__name__)


async def _rows(chat: ChatService) -> list[ServedRow]:
    served = await chat.refresh_gauges()
    rows = []
    for model in sorted(served, key=lambda m: str(m.pull)):
        record = await chat.records.get(model.pull)
        rows.append(ServedRow(model, record if record and not record.closed else None))
    return rows


async def overview_section(chat: ChatService | None, show_private: bool, root: str) -> str:
    if chat is None or chat.backend is None:
        return ""
    try:
        rows, hidden = visible(await _rows(chat), show_private)
    except (ServingError, RedisError, OSError) as exc:
        log.warning("status.served_unavailable", error=str(exc))
        return ""
    return served_section(rows, hidden, root, time.time())


async def pr_section(chat: ChatService | None, pull: PullRequestRef, show_private: bool) -> str:
    """The PR's served model; a signed-in viewer also gets a fresh chat link and the token."""
    if chat is None or chat.backend is None:
        return ""
    try:
        served = await chat.backend.status(pull)
        record = await chat.records.get(pull)
    except (ServingError, RedisError, OSError) as exc:
        log.warning("status.served_unavailable", error=str(exc))
        return ""
    if record is not None and record.closed:
        record = None
    row = ServedRow(served, record) if served is not None else None
    shown, _hidden = visible([row] if row else [], show_private)
    row = shown[0] if shown else None
    link = token = base = ""
    if row is not None and record is not None and show_private:
        links = await chat.links(record, "")
        link, base, token = links.chat_link, links.api_base, await chat.api_token(record)
    elif row is not None:
        base = api_base(chat.settings.public_url, pull)
    return pr_served_section(row, link, base, token, time.time())

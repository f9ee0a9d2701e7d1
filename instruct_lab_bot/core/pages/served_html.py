"""The status page's "models being served" sections (pure): every served PR model with its
state on the front page; on a PR's page its state, its chat link and, for viewers signed in
on the status page, its API token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from instruct_lab_bot.core.chat_access import ChatRecord
from instruct_lab_bot.core.messages.format import format_duration
from instruct_lab_bot.core.serving import ServedModel, ServeState

TITLE = "Models being served"
STATE_TEXT = {
    ServeState.DEPLOYING: "starting",
    ServeState.READY: "ready",
    ServeState.SCALED_TO_ZERO: "scaled to zero",
    ServeState.FAILED: "failed",
    ServeState.GONE: "removed",
}
_STATE_CLASS = {
    ServeState.DEPLOYING: "s-queued",
    ServeState.READY: "s-succeeded",
    ServeState.SCALED_TO_ZERO: "s-cancelled",
    ServeState.FAILED: "s-failed",
    ServeState.GONE: "s-cancelled",
}
_LABELS = ("Pull request", "Model", "Train job", "State", "Last request")


@dataclass(frozen=True)
class ServedRow:
    served: ServedModel
    record: ChatRecord | None  # None: the backend serves it, the bot has no record (an orphan)


def visible(rows: Sequence[ServedRow], show_private: bool) -> tuple[list[ServedRow], int]:
    """The rows this viewer may see and how many were left out (private or unowned)."""
    shown = [r for r in rows if show_private or (r.record is not None and not r.record.private)]
    return shown, len(rows) - len(shown)


def _ago(when: float, now: float) -> str:
    return f"{format_duration(max(0.0, now - when))} ago" if when else "never"


def state_badge(served: ServedModel) -> str:
    text = STATE_TEXT.get(served.state, served.state.value)
    css = _STATE_CLASS.get(served.state, "")
    badge = f'<span class="badge {css}">{escape(text)}</span>'
    return badge + (
        f' <span class="error">{escape(served.message)}</span>' if served.message else ""
    )


def _row(row: ServedRow, root: str, now: float) -> str:
    served, pull = row.served, row.served.pull
    path = escape(
        f"{root}repos/{quote(pull.owner, safe='')}/{quote(pull.name, safe='')}/pulls/{pull.number}"
    )
    cells = (
        f'<a href="{path}">{escape(str(pull))}</a>',
        f"<code>{escape(served.name)}</code>",
        f"<code>{escape(served.train_job)}</code>",
        state_badge(served),
        escape(_ago(served.last_request_at, now)),
    )
    tds = "".join(
        f'<td data-label="{escape(label)}"><div>{cell}</div></td>'
        for label, cell in zip(_LABELS, cells, strict=True)
    )
    return f'<tr class="served">{tds}</tr>'


def served_section(rows: Sequence[ServedRow], hidden: int, root: str, now: float) -> str:
    heading = f'<section id="served"><h2>{TITLE} <span class="n">{len(rows) + hidden}</span></h2>'
    note = (
        f'<p class="note">{hidden} more of private repositories (sign in to see them).</p>'
        if hidden
        else ""
    )
    if not rows:
        empty = "" if hidden else '<p class="muted empty">No model is being served.</p>'
        return heading + empty + note + "</section>"
    head = "".join(f"<th>{label}</th>" for label in _LABELS)
    body = "".join(_row(r, root, now) for r in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"{heading}{table}{note}</section>"


def pr_served_section(
    row: ServedRow | None, chat_link: str, api_base: str, api_token: str, now: float
) -> str:
    """One PR's served model: state, chat link, endpoint; the token only when given (a viewer
    signed in on the status page)."""
    heading = f'<section id="served"><h2>{TITLE}</h2>'
    if row is None:
        return heading + '<p class="muted empty">No model is being served.</p></section>'
    served = row.served
    items = [
        f"<li>Model <code>{escape(served.name)}</code> of train job "
        f"<code>{escape(served.train_job)}</code>: {state_badge(served)}</li>",
        f"<li>Last request: {escape(_ago(served.last_request_at, now))}</li>",
    ]
    if chat_link:
        items.append(f'<li><a href="{escape(chat_link)}">Open the chat page</a></li>')
    if api_base:
        items.append(f"<li>OpenAI-compatible endpoint: <code>{escape(api_base)}</code></li>")
    if api_token:
        items.append(
            f'<li>API token (<code>Authorization: Bearer …</code>): <code id="api-token">'
            f"{escape(api_token)}</code></li>"
        )
    return heading + "<ul>" + "".join(items) + "</ul></section>"

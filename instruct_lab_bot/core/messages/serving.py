"""Replies of `serve`, `serve stop` and `chat`, and the chat proxy's error texts (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from instruct_lab_bot.core.chat_access import ChatRecord
from instruct_lab_bot.core.messages.format import code_block, escape_md, format_duration
from instruct_lab_bot.core.serving import ServedModel, ServeState

MAX_ANSWER_CHARS = 6000  # of a `chat` answer in a reply
MAX_QUESTION_CHARS = 1000

NOT_YOUR_FAULT = "This is not caused by your pull request: the bot's admins need to fix it."

PR_CLOSED = (
    "This pull request is closed or merged, so its model is no longer served and this link "
    "no longer works. Reopen the pull request and ask the bot to `serve` it again to chat."
)
NOT_SERVED = (
    "No model is being served for this pull request (it was stopped, or never started). "
    "Someone allowed to run the bot's commands can start it with `serve` on the pull request."
)
INVALID_LINK = (
    "This link or token is not valid for this pull request's model: it expired, or the model "
    "was served again since (each `serve` makes new links). Use the link of the newest "
    "`serve` reply, or ask for a new one with `serve`."
)
SERVING_OFF = (
    "Serving models for chat is not set up on this bot (no serving backend). " + NOT_YOUR_FAULT
)


@dataclass(frozen=True)
class ServeLinks:
    """Where the `serve` reply points."""

    chat_link: str
    link_expires: int  # unix seconds
    api_base: str  # `…/v1` through the bot's proxy
    status_page: str  # the PR's status page, where the API token is shown (auth'd)
    token_on_status_page: bool  # ILAB_BOT_STATUS_AUTH is set


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _code(text: str) -> str:
    """Outside text as an inline code span (no Markdown inside one; a backtick cannot end it)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def _model_line(record: ChatRecord) -> str:
    parts = [f"the model of train job {_code(record.train_job)}"]
    if record.base_model:
        parts.append(f"fine-tuned from {_code(record.base_model)}")
    if record.data_job:
        parts.append(f"on the data of job {_code(record.data_job)}")
    return " ".join(parts)


def curl_example(api_base: str, model_name: str) -> str:
    body = {
        "model": model_name,
        "messages": [{"role": "user", "content": "Hello! What did you learn?"}],
        "stream": True,
    }
    data = json.dumps(body).replace("'", "'\\''")
    return (
        f"curl -N {api_base}/chat/completions \\\n"
        '  -H "Authorization: Bearer $ILAB_BOT_CHAT_TOKEN" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{data}'"
    )


def scaling_text(
    served: ServedModel, idle_removal: float | None, scale_down_after: float | None = None
) -> str:
    state = {
        ServeState.DEPLOYING: "is starting",
        ServeState.READY: "is up",
        ServeState.SCALED_TO_ZERO: "is scaled to zero",
    }.get(served.state, f"is {served.state.value.replace('_', ' ')}")
    text = f"The model {state}. When no one chats"
    if scale_down_after:
        text += f" for {format_duration(scale_down_after)}"
    text += " it scales to zero and costs nothing"
    if served.cold_start_seconds:
        wait = format_duration(served.cold_start_seconds)
        text += f"; the first answer after that takes about {wait}"
    text += ". It is removed when this pull request is closed or merged"
    if idle_removal:
        text += f", after {format_duration(idle_removal)} without a request"
    return text + ", or with `serve stop`."


def serve_reply(
    username: str,
    record: ChatRecord,
    served: ServedModel,
    links: ServeLinks,
    idle_removal: float | None = None,
    scale_down_after: float | None = None,
) -> str:
    if links.token_on_status_page:
        where = (
            f"its token (`$ILAB_BOT_CHAT_TOKEN`) is on [this PR's status page]({links.status_page})"
            " for those who can sign in there; the chat link's `token=` value also works "
            "until the link expires"
        )
    else:
        where = (
            "use the chat link's `token=` value as `$ILAB_BOT_CHAT_TOKEN` (valid until the "
            "link expires)"
        )
    lines = [
        f"Serving {_model_line(record)} as {_code(record.model_name)}.",
        "",
        f"- **Chat:** [open the chat page]({links.chat_link}) (answers stream as they are "
        f"written; the link works until {_when(links.link_expires)})",
        f"- **OpenAI-compatible endpoint** for your own tools: `{links.api_base}` — {where}.",
        f"- **Ask from a comment:** `@{username} chat <your question>`",
        "",
        code_block(curl_example(links.api_base, record.model_name).splitlines(), 4000),
        "",
        scaling_text(served, idle_removal, scale_down_after),
    ]
    return "\n".join(lines)


def no_trained_model(username: str) -> str:
    return (
        "This pull request has no trained model to serve yet. Run "
        f"`@{username} train` first (it trains on a `generate` job's data); when it has "
        f"succeeded, `@{username} serve` deploys it and `@{username} chat <question>` asks it."
    )


def serving_failed(message: str, not_your_fault: bool) -> str:
    text = f"The model could not be served: {escape_md(message)}"
    return text + ("\n\n" + NOT_YOUR_FAULT if not_your_fault else "")


def serve_stopped(removed: bool, sender: str) -> str:
    if not removed:
        return "No model was being served for this pull request; nothing to stop."
    return (
        f"Stopped serving this pull request's model (asked by @{escape_md(sender)}). Its chat "
        "links and token no longer work; `serve` starts it again with new ones."
    )


def chat_needs_question(username: str) -> str:
    return f"`chat` needs a question: `@{username} chat What does this skill teach?`"


def chat_answer(question: str, answer: str, record: ChatRecord, cut_question: bool) -> str:
    """The answer as plain text in a code block (nothing in it can render), bounded."""
    shown = question[:MAX_QUESTION_CHARS]
    text = answer.strip() or "(the model gave an empty answer)"
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + "\n… (cut: the answer was longer)"
    lines = [
        f"**Question:** {escape_md(shown)}",
        "",
        f"**Answer** of {_model_line(record)} ({_code(record.model_name)}):",
        "",
        code_block(text.splitlines() or [""], MAX_ANSWER_CHARS + 200),
    ]
    if cut_question:
        lines += ["", "(Only the first words of a long question are read: use the chat page.)"]
    return "\n".join(lines)


def chat_failed(message: str, not_your_fault: bool) -> str:
    text = f"The model did not answer: {escape_md(message)}"
    return text + ("\n\n" + NOT_YOUR_FAULT if not_your_fault else "")


def cold_start_timeout(seconds: float) -> str:
    return (
        f"The model did not start within {format_duration(seconds)} (it was scaled to zero "
        "or is still being deployed). Try again in a few minutes."
    )


def limited(which: str, retry_after: float) -> str:
    what = {
        "user_rate": "You sent too many requests",
        "model_rate": "This model got too many requests",
        "user_concurrency": "You already have the most answers streaming at once",
        "model_concurrency": "This model is answering as many requests as it may at once",
    }.get(which, "Too many requests")
    return f"{what}; try again in {max(1, round(retry_after))} s."


def too_large(limit: int) -> str:
    return f"The request is larger than {limit} bytes; send a shorter conversation."

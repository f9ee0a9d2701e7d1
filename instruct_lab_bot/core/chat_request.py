"""OpenAI chat requests through the bot's proxy, and what comes back (pure).

A request is checked before it reaches a model: JSON, a bounded list of messages with a
role and text, `stream` a boolean; `model` is set to the PR's model (the caller cannot pick
another) and `max_tokens` lowered to the limit. Answers are read for the metrics (tokens) and
for the `chat` command's reply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_MESSAGES = 64
ROLES = frozenset({"system", "user", "assistant"})
#: The request fields passed on; anything else is dropped (no tools, no logit games).
PASSED = frozenset({"temperature", "top_p", "stop", "seed", "n", "presence_penalty",
                    "frequency_penalty"})  # fmt: skip


class ChatRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ChatRequest:
    body: dict[str, Any]  # what the model is sent
    stream: bool


def prepare(raw: bytes, model: str, max_tokens: int) -> ChatRequest:
    """The request as the model gets it; raises `ChatRequestError` (400) saying what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ChatRequestError(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ChatRequestError(400, "the body must be a JSON object")
    messages = data.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
        raise ChatRequestError(400, f"`messages` must be a list of 1 to {MAX_MESSAGES} messages")
    for message in messages:
        if not (
            isinstance(message, dict)
            and message.get("role") in ROLES
            and isinstance(message.get("content"), str)
        ):
            raise ChatRequestError(
                400, "each message needs a `role` (system, user, assistant) and text `content`"
            )
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ChatRequestError(400, "`stream` must be true or false")
    asked = data.get("max_tokens")
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool) or asked < 1):
        raise ChatRequestError(400, "`max_tokens` must be a positive integer")
    body = {k: v for k, v in data.items() if k in PASSED}
    body |= {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "stream": stream,
        "max_tokens": min(asked or max_tokens, max_tokens),
    }
    return ChatRequest(body, stream)


def question_request(question: str, model: str, max_tokens: int) -> dict[str, Any]:
    """The `chat` command's one question, not streamed."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "stream": False,
        "max_tokens": max_tokens,
    }


def sse_delta(line: bytes) -> str | None:
    """The text of one streamed `data: {...}` line (None for anything else: comments, the
    role chunk, `[DONE]`, a line that is not JSON)."""
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]":
        return None
    try:
        chunk = json.loads(payload)
        content = chunk["choices"][0]["delta"].get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) and content else None


def answer_text(data: object) -> str:
    """The first choice's text of a non-streamed answer ("" when it has none)."""
    try:
        content = data["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def completion_tokens(data: object) -> int:
    """`usage.completion_tokens` of a non-streamed answer, else a word count of its text."""
    try:
        count = data["usage"]["completion_tokens"]  # type: ignore[index]
        if isinstance(count, int) and count >= 0:
            return count
    except (KeyError, TypeError):
        pass
    return len(answer_text(data).split())

"""Who may chat with a PR's served model (pure): the chat record the `serve` command leaves,
the signed chat link and the per-PR API token.

Two credentials, both bound to one *serving* of one PR (`ChatRecord.nonce`, new on every
`serve`), so `serve stop`, a new `serve` and the PR's closing end every one handed out:

- the **chat link** (`/chat/<owner>/<repo>/<pr>?token=<expires>.<sig>`) is in the `serve`
  reply; it expires after `ILAB_BOT_CHAT_LINK_TTL`. Anyone who can read the PR can follow it,
  as anyone can read the bot's other replies there.
- the **API token** (`ilb-…`) opens the OpenAI-compatible endpoint for a reviewer's own tools
  until the model is removed. It is never posted on the PR: it is shown only on the status
  page's PR page, which needs `ILAB_BOT_STATUS_AUTH` (the admins'); without it the token is
  not shown anywhere, and the chat link's token (also a bearer token) is the way in.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from instruct_lab_bot.core.refs import PullRequestRef, RepoRef

API_TOKEN_PREFIX = "ilb-"  # noqa: S105 - a prefix, not a secret
MAX_SEEDS = 12  # one-click prompts on the chat page
MAX_SEED_CHARS = 500
_CONTEXT = b"instruct-lab-bot chat v1\n"


@dataclass(frozen=True)
class ChatRecord:
    """A PR's serving as the bot remembers it (Redis): what the chat page shows and what a
    credential must match."""

    pull: PullRequestRef
    nonce: str  # new on every `serve`: every credential names it
    train_job: str
    model_name: str  # the name the model answers to (`model` in the OpenAI request)
    base_model: str = ""
    data_job: str = ""
    seeds: tuple[str, ...] = field(default_factory=tuple)
    requested_by: str = ""
    created_at: float = 0.0
    closed_at: float = 0.0  # the PR was closed or merged: links answer 410
    private: bool = False  # a private repository: the public status page leaves it out

    @property
    def closed(self) -> bool:
        return self.closed_at > 0

    def closing(self, now: float) -> ChatRecord:
        return replace(self, closed_at=now)

    def to_fields(self) -> dict[str, str]:
        return {
            "repo": self.pull.repo.full_name,
            "number": str(self.pull.number),
            "nonce": self.nonce,
            "train_job": self.train_job,
            "model_name": self.model_name,
            "base_model": self.base_model,
            "data_job": self.data_job,
            "seeds": "\n".join(s.replace("\n", " ") for s in self.seeds),
            "requested_by": self.requested_by,
            "created_at": repr(self.created_at),
            "closed_at": repr(self.closed_at),
            "private": "1" if self.private else "",
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> ChatRecord:
        owner, _, name = str(fields["repo"]).partition("/")
        seeds = str(fields.get("seeds") or "")
        return cls(
            pull=RepoRef(owner, name).pull(int(fields["number"])),
            nonce=str(fields["nonce"]),
            train_job=str(fields["train_job"]),
            model_name=str(fields["model_name"]),
            base_model=str(fields.get("base_model") or ""),
            data_job=str(fields.get("data_job") or ""),
            seeds=tuple(s for s in seeds.split("\n") if s),
            requested_by=str(fields.get("requested_by") or ""),
            created_at=float(fields.get("created_at") or 0),
            closed_at=float(fields.get("closed_at") or 0),
            private=bool(fields.get("private")),
        )


def bounded_seeds(questions: list[str]) -> tuple[str, ...]:
    """The seed questions the page offers: distinct, one line each, bounded in number and size."""
    kept: list[str] = []
    for question in questions:
        line = " ".join(question.split())[:MAX_SEED_CHARS]
        if line and line not in kept:
            kept.append(line)
    return tuple(kept[:MAX_SEEDS])


def _mac(signing_key: bytes, *parts: str) -> str:
    message = _CONTEXT + "\n".join(parts).encode("utf-8", "surrogateescape")
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode())


def link_token(record: ChatRecord, expires: int, signing_key: bytes) -> str:
    """The chat link's token: `<expires>.<hmac>` for this serving of this PR."""
    mac = _mac(signing_key, "link", str(record.pull), record.nonce, str(expires))
    return f"{expires}.{mac}"


def api_token(record: ChatRecord, signing_key: bytes) -> str:
    """The per-PR API token for this serving (valid until the model is removed)."""
    return API_TOKEN_PREFIX + _mac(signing_key, "api", str(record.pull), record.nonce)[:40]


def token_allows(record: ChatRecord, token: str, signing_key: bytes, now: float) -> bool:
    """True when `token` is this serving's API token or an unexpired chat-link token."""
    if len(token) > 200:
        return False
    if token.startswith(API_TOKEN_PREFIX):
        return _same(token, api_token(record, signing_key))
    expires_text, dot, _mac_text = token.partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    return now <= expires and _same(token, link_token(record, expires, signing_key))


def chat_path(pull: PullRequestRef) -> str:
    return f"/chat/{quote(pull.owner)}/{quote(pull.name)}/{pull.number}"


def chat_link(public_url: str, record: ChatRecord, expires: int, signing_key: bytes) -> str:
    token = link_token(record, expires, signing_key)
    return f"{public_url.rstrip('/')}{chat_path(record.pull)}?token={token}"


def api_base(public_url: str, pull: PullRequestRef) -> str:
    """The OpenAI base URL of the PR's model through the bot (`…/v1`)."""
    return f"{public_url.rstrip('/')}{chat_path(pull)}/v1"


def user_key(token: str, address: str) -> str:
    """Who a request counts against for the per-person limits: the API token (one per PR,
    shared by its holders) or, for chat-link holders, their address."""
    if token.startswith(API_TOKEN_PREFIX):
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return "addr:" + address

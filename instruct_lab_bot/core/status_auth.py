"""Who may read the status page: `ILAB_BOT_STATUS_AUTH` parsed, and credentials checked in
constant time. Pure, so settings validation can use it without the web server."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field

REALM = "instruct-lab-bot status"


MIN_TOKEN = 16


MIN_PASSWORD = 8


@dataclass(frozen=True)
class StatusAuth:
    """`bearer:<token>` or `basic:<user>:<password>` from `ILAB_BOT_STATUS_AUTH`.

    With a bearer token, HTTP Basic with the token as password (any user name) is accepted too:
    a browser cannot send a bearer header without JavaScript, but it can show a login prompt.
    """

    scheme: str  # "bearer" | "basic"
    user: str
    secret: str = field(repr=False)

    def allows(self, authorization: str | None) -> bool:
        kind, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if kind.lower() == "bearer" and self.scheme == "bearer":
            return _same(credentials, self.secret)
        if kind.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, colon, password = decoded.partition(":")
        if not colon:
            return False
        if self.scheme == "bearer":
            return _same(password, self.secret)
        return _same(user, self.user) & _same(password, self.secret)

    def challenges(self) -> list[str]:
        basic = f'Basic realm="{REALM}", charset="UTF-8"'
        return [f'Bearer realm="{REALM}"', basic] if self.scheme == "bearer" else [basic]


def parse_status_auth(text: str) -> StatusAuth | None:
    """None when unset (a public page). Error messages never quote the value."""
    if not text:
        return None
    scheme, _, rest = text.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "bearer":
        if len(rest) < MIN_TOKEN or any(c.isspace() for c in rest):
            raise ValueError(
                f"bearer token must be at least {MIN_TOKEN} characters without spaces "
                "(e.g. `openssl rand -hex 24`)"
            )
        return StatusAuth("bearer", "", rest)
    if scheme == "basic":
        user, colon, password = rest.partition(":")
        if not colon or not user or len(password) < MIN_PASSWORD:
            raise ValueError(
                f"use basic:<user>:<password> with a password of at least {MIN_PASSWORD} characters"
            )
        return StatusAuth("basic", user, password)
    raise ValueError("must be bearer:<token> or basic:<user>:<password>")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())

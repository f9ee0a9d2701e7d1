"""The one error the GitHub adapter raises."""

from __future__ import annotations


class GitHubError(Exception):
    """A GitHub call that failed after retries; the message is safe to show users.

    `transient` says whether trying again later may succeed (5xx, timeouts, rate limits), as
    opposed to a refusal that will not change (404, 422, lost permission).
    """

    def __init__(self, message: str, *, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status = status
        self.transient = transient

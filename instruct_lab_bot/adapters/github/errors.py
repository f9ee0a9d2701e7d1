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


class QuotaSpent(GitHubError):
    """The installation's primary (hourly) quota is spent until `until` (epoch seconds).

    Raised without calling GitHub while the quota mark is set, so callers wait for `until`
    rather than try again: an attempt before then only earns another refusal.
    """

    def __init__(self, what: str, installation_id: int, until: float) -> None:
        super().__init__(
            f"GitHub call failed ({what}): the installation's hourly quota is spent",
            status=403,
            transient=True,
        )
        self.installation_id = installation_id
        self.until = until

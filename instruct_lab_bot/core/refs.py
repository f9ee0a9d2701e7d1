"""Typed identities of what the bot works on, instead of loose `owner, repo, number`.

Frozen and hashable, so they serve as dictionary keys and cache keys; the owner and name are
kept as GitHub spelled them (GitHub compares them case-insensitively: `key` folds case).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RepoRef:
    """A repository: `owner/name`."""

    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def key(self) -> str:
        """Case-folded `owner/name`, for allow-lists and caches."""
        return self.full_name.lower()

    def pull(self, number: int) -> PullRequestRef:
        return PullRequestRef(self, number)

    def __str__(self) -> str:
        return self.full_name

    @classmethod
    def parse(cls, full_name: str) -> RepoRef:
        owner, slash, name = full_name.partition("/")
        if not slash or not owner or not name or "/" in name:
            raise ValueError(f"{full_name!r} is not owner/repo")
        return cls(owner, name)


@dataclass(frozen=True)
class PullRequestRef:
    """A pull request (or an issue, which shares its number space): `owner/name#number`."""

    repo: RepoRef
    number: int

    @property
    def owner(self) -> str:
        return self.repo.owner

    @property
    def name(self) -> str:
        return self.repo.name

    def __str__(self) -> str:
        return f"{self.repo.full_name}#{self.number}"

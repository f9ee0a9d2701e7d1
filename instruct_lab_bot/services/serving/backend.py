"""The serving backend interface: `kserve` (InferenceServices on OpenShift AI) and `local`
(`ilab model serve` on a serve worker) both implement it, so the commands, the chat proxy and
the status page never know which is in use."""

from __future__ import annotations

from typing import Protocol

from instruct_lab_bot.core.refs import PullRequestRef
from instruct_lab_bot.core.serving import ModelRef, ServedModel


class ServingBackend(Protocol):
    async def deploy(self, model: ModelRef) -> ServedModel:
        """Create or update the PR's served model (a new train replaces the old model)."""
        ...

    async def status(self, pull: PullRequestRef) -> ServedModel | None:
        """The PR's served model, None when there is none."""
        ...

    async def ready_url(self, pull: PullRequestRef, within: float) -> str:
        """The base URL of the PR model's OpenAI-compatible API once it answers, starting it
        if it was scaled to zero; raises `ServingError` when it cannot within `within` seconds."""
        ...

    async def remove(self, pull: PullRequestRef) -> bool:
        """Remove the PR's served model; False when there was none."""
        ...

    async def list_served(self) -> list[ServedModel]:
        """Every model this backend serves (status page, orphan reconciler, TTL sweep)."""
        ...

    async def aclose(self) -> None: ...


class ServingError(Exception):
    """A model that could not be served; `not_your_fault` when the cluster or the admin's
    setup is the cause (quota, RBAC, image pull), so the reply says so."""

    def __init__(self, message: str, *, not_your_fault: bool = True) -> None:
        super().__init__(message)
        self.not_your_fault = not_your_fault

"""The one table of bot commands (pure).

Every fact about a command lives in its row: who may run it by default, which job it queues and
on which kind of worker, what `help` says about it, which dispatcher handler acts on it and which
gates a request must pass first. `KNOWN_COMMANDS`, `GPU_COMMANDS`, the default of
`ILAB_BOT_RESTRICTED_COMMANDS`, the help table and the permission matrix all derive from it.

Adding a command: one row here, its handler in `services/dispatcher/commands.py` (keyed by
`handler`) and its texts in `core/messages/`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Handler(enum.StrEnum):
    """Which dispatcher handler acts on a command (the dispatcher maps each to a method)."""

    HELP = "help"
    STATUS = "status"
    START_JOB = "start_job"
    RETRY = "retry"
    CANCEL = "cancel"
    LINKS = "links"
    SERVE = "serve"
    CHAT = "chat"


#: The worker capability that spends GPU time.
GPU = "gpu"


@dataclass(frozen=True)
class CommandSpec:
    """One row of the command table."""

    name: str
    help: str  # one line for the `help` table
    handler: Handler
    restricted: bool  # restricted by default (`ILAB_BOT_RESTRICTED_COMMANDS` may change it)
    job_kind: str | None = None  # the job it queues (`Job.command`); None: it queues none
    capability: str | None = None  # what the worker running that job must have
    builds_on: str | None = None  # the command whose successful job of the PR it needs first
    needs_open_pull_request: bool = False  # refused on a closed PR
    needs_labels: bool = False  # one of `ILAB_BOT_REQUIRED_LABELS` on the PR first
    needs_taxonomy_change: bool = False  # a changed `qna.yaml` that passes validation

    @property
    def queues_job(self) -> bool:
        return self.job_kind is not None


#: The order is the order `help` lists them in.
COMMAND_TABLE: tuple[CommandSpec, ...] = (
    CommandSpec("help", "show this list", Handler.HELP, restricted=False),
    CommandSpec(
        "generate",
        "run `ilab data generate` on this PR's head and post the synthetic data",
        Handler.START_JOB,
        restricted=True,
        job_kind="generate",
        capability=GPU,
        needs_open_pull_request=True,
        needs_labels=True,
        needs_taxonomy_change=True,
    ),
    CommandSpec(
        "precheck",
        "ask the current model each seed question and compare with your answers",
        Handler.START_JOB,
        restricted=True,
        job_kind="precheck",
        capability=GPU,
        needs_open_pull_request=True,
        needs_labels=True,
        needs_taxonomy_change=True,
    ),
    CommandSpec(
        "test",
        "ask the base and the trained model each seed question and score both against your "
        "answers (`test --model <train job id>`; default: the newest trained model)",
        Handler.START_JOB,
        restricted=True,
        job_kind="test",
        capability="test",
        needs_open_pull_request=True,
        builds_on="train",
    ),
    CommandSpec(
        "status",
        "list this PR's jobs: queued, running and finished, with links",
        Handler.STATUS,
        restricted=False,
    ),
    CommandSpec(
        "retry",
        "re-run the last failed, cancelled or timed-out job on the current head",
        Handler.RETRY,
        restricted=True,
    ),
    CommandSpec(
        "cancel", "cancel this PR's queued and running jobs", Handler.CANCEL, restricted=True
    ),
    CommandSpec(
        "links",
        "fresh links to the files of this PR's latest job (or `links <job id>`)",
        Handler.LINKS,
        restricted=False,
    ),
    CommandSpec(
        "serve",
        "serve this PR's latest trained model: a chat page and an OpenAI-compatible endpoint "
        "(`serve stop` removes it)",
        Handler.SERVE,
        restricted=True,
        needs_open_pull_request=True,
    ),
    CommandSpec(
        "chat",
        "ask this PR's trained model a question: `chat <question>`",
        Handler.CHAT,
        restricted=True,
        needs_open_pull_request=True,
    ),
)

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in COMMAND_TABLE}
KNOWN_COMMANDS: tuple[str, ...] = tuple(COMMANDS)
#: Commands that spend GPU time (metrics count their jobs).
GPU_COMMANDS: frozenset[str] = frozenset(s.name for s in COMMAND_TABLE if s.capability == GPU)
#: The default of `ILAB_BOT_RESTRICTED_COMMANDS`.
DEFAULT_RESTRICTED: tuple[str, ...] = tuple(s.name for s in COMMAND_TABLE if s.restricted)


def lookup(name: str) -> CommandSpec | None:
    """The row of a command name as typed (case-insensitive), None for an unknown command."""
    return COMMANDS.get(name.lower())


def spec_for_job(job_kind: str) -> CommandSpec | None:
    """The command that queues jobs of this kind (a retry re-runs it with its gates)."""
    return next((s for s in COMMAND_TABLE if s.job_kind == job_kind), None)

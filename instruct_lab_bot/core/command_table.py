"""The one table of bot commands (pure).

Every fact about a command lives in its row: who may run it by default, which job it queues and
on which kind of worker, what `help` says about it, which dispatcher handler acts on it and which
gates a request must pass first. `KNOWN_COMMANDS`, `GPU_COMMANDS`, `CAPABILITIES`, the default of
`ILAB_BOT_RESTRICTED_COMMANDS`, the help table and the permission matrix all derive from it.

Adding a command: one row here, its handler in `services/dispatcher/commands.py` (keyed by
`handler`) and its texts in `core/messages/`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
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


@dataclass(frozen=True)
class CommandSpec:
    """One row of the command table."""

    name: str
    help: str  # one line for the `help` table
    handler: Handler
    restricted: bool  # restricted by default (`ILAB_BOT_RESTRICTED_COMMANDS` may change it)
    job_kind: str | None = None  # the job it queues (`Job.command`); None: it queues none
    # What the worker running that job must have: a job's capability is its job kind, and
    # each capability is a worker pool with its own jobs stream (`{ilab-bot}:jobs:<kind>`).
    capability: str | None = None
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
        capability="generate",
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
        capability="precheck",
        needs_open_pull_request=True,
        needs_labels=True,
        needs_taxonomy_change=True,
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
        "train",
        "train a model on this PR's newest successful `generate` data "
        "(`train --from <job id>` for an older one) and post how to download it",
        Handler.START_JOB,
        restricted=True,
        job_kind="train",
        capability="train",
        needs_open_pull_request=True,
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
#: The capability of the workers that run PR models for chat (`serve`/`chat` with the `local`
#: serving backend): a pool with no job kind, whose jobs stream stays empty.
SERVE_CAPABILITY = "serve"
#: Every worker capability (pool), in table order: a worker without `--capabilities` has all.
CAPABILITIES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [*(s.capability for s in COMMAND_TABLE if s.capability is not None), SERVE_CAPABILITY]
    )
)
#: The job kinds that spend GPU time (metrics count their jobs).
GPU_JOB_KINDS = frozenset({"generate", "precheck", "train", "test", "serve"})
#: Commands that spend GPU time (metrics count their jobs).
GPU_COMMANDS: frozenset[str] = frozenset(
    s.name for s in COMMAND_TABLE if s.job_kind in GPU_JOB_KINDS
)
#: The default of `ILAB_BOT_RESTRICTED_COMMANDS`.
DEFAULT_RESTRICTED: tuple[str, ...] = tuple(s.name for s in COMMAND_TABLE if s.restricted)


def lookup(name: str) -> CommandSpec | None:
    """The row of a command name as typed (case-insensitive), None for an unknown command."""
    return COMMANDS.get(name.lower())


def capability_of(job_kind: str) -> str:
    """The worker pool that runs jobs of this kind (its capability; the kind itself when no
    row names one, so a job of a kind this release does not know still has one pool)."""
    spec = spec_for_job(job_kind)
    return spec.capability if spec is not None and spec.capability else job_kind


def parse_capabilities(text: str) -> tuple[str, ...]:
    """`generate,precheck` → the capabilities named, in table order; "" or "all": every one.
    ValueError names an unknown capability."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names or names == ["all"]:
        return CAPABILITIES
    unknown = sorted(set(names) - set(CAPABILITIES))
    if unknown:
        raise ValueError(
            f"unknown capability {', '.join(unknown)} (known: {', '.join(CAPABILITIES)})"
        )
    return tuple(c for c in CAPABILITIES if c in names)


def worker_capabilities(registration: Mapping[str, str]) -> tuple[str, ...]:
    """The pools a registered worker takes jobs from (a worker from before pools: all)."""
    if "capabilities" not in registration:
        return CAPABILITIES
    return tuple(c for c in registration["capabilities"].split(",") if c)


def spec_for_job(job_kind: str) -> CommandSpec | None:
    """The command that queues jobs of this kind (a retry re-runs it with its gates)."""
    return next((s for s in COMMAND_TABLE if s.job_kind == job_kind), None)

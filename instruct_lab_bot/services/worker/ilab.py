"""Run `ilab data generate` for a job: its output streamed into the log file and into the
progress the check run shows, within the job's time limit and cancel."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence

from instruct_lab_bot.adapters.git import CheckoutResult
from instruct_lab_bot.adapters.runner import RunLimits, RunResult
from instruct_lab_bot.adapters.sandbox import ilab_command
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.ilab import GenerateRun, generate_run
from instruct_lab_bot.core.job_outcome import exit_label
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.log_file import CappedLog
from instruct_lab_bot.services.worker.reporting import Reporter
from instruct_lab_bot.services.worker.workspace import Workspace


class JobFailed(Exception):
    """A failure to report on the PR as-is (its message is written for contributors)."""


class LineSink:
    """Each output line, redacted, to the log file and to the progress parser: the log, the
    check run's tail and stage, and the error text never see a secret ilab printed.

    `run_streaming` hands it a chunk's lines at once (`lines`): one redaction pass and one
    log write per chunk instead of per line (issue 17: output pumping)."""

    def __init__(self, progress: Progress, log_file: CappedLog, redactor: Redactor) -> None:
        self.progress = progress
        self.log_file = log_file
        self.redactor = redactor

    def __call__(self, _stream: str, line: str) -> None:
        line = self.redactor.redact(line)
        self.log_file.write_line(line)
        self.progress.feed(line)

    def lines(self, _stream: str, lines: list[str]) -> None:
        text = "\n".join(lines)
        redacted, data = self.redactor.redact_encoded(text)
        if redacted is not text:  # a redaction may span lines (a PEM key): split what remains
            lines = redacted.split("\n")
        self.log_file.write_lines(lines, data)
        self.progress.feed_lines(lines, data)


def line_sink(progress: Progress, log_file: CappedLog, redactor: Redactor) -> LineSink:
    return LineSink(progress, log_file, redactor)


def shown_command(argv: Sequence[str], redactor: Redactor) -> str:
    """The exact command ilab ran, redacted: the first line of `ilab.log` and the reply's."""
    return redactor.redact(shlex.join(argv))


def plan_generate(
    deps: WorkerDeps, job: Job, checkout: CheckoutResult, workspace: Workspace
) -> GenerateRun:
    """The job's `ilab data generate` for the worker's ilab (its profile), with the flags the
    repository's configuration chose (checked against the admin's bounds by the dispatcher)."""
    return generate_run(
        deps.ilab.profile,
        deps.settings,
        checkout.path,
        checkout.base_ref,
        workspace.out_dir,
        repo_args=shlex.split(job.repo_args),
    )


async def run_generate(
    deps: WorkerDeps,
    reporter: Reporter,
    checkout: CheckoutResult,
    workspace: Workspace,
    progress: Progress,
    cancel: asyncio.Event | None,
) -> tuple[RunResult, str]:
    """Run ilab while `reporter` follows its progress; the run and the command line shown.
    JobFailed if it cannot start."""
    settings = deps.settings
    planned = plan_generate(deps, reporter.job, checkout, workspace)
    argv = planned.argv
    command_line = shown_command(argv, deps.redactor)
    await redis_calls.best_effort(
        deps.queue.update_job(
            reporter.job.id, teacher_model=planned.teacher_model, pipeline=planned.pipeline
        )
    )
    limits = RunLimits(timeout=settings.job_timeout, kill_grace=settings.kill_grace)
    stop_updates = asyncio.Event()
    updater = asyncio.create_task(reporter.follow(progress, stop_updates))
    with CappedLog(workspace.log_path, settings.log_limit) as log_file:
        log_file.write_line(f"$ {command_line}")
        try:
            with span("ilab.run", argv0=argv[0]) as current:
                command = ilab_command(settings, argv, workspace=workspace.root, cwd=checkout.path)
                run = await deps.tools.run(
                    command.argv,
                    cwd=checkout.path,
                    env=command.env,
                    on_line=line_sink(progress, log_file, deps.redactor),
                    cancel=cancel,
                    limits=limits,
                )
                current.set_attribute("ilab_bot.exit_code", str(run.exit_code))
                current.set_attribute("ilab_bot.outcome", run.outcome)
        except OSError as exc:
            raise JobFailed(f"cannot start `{argv[0]}`: {exc.strerror or exc}") from None
        finally:
            stop_updates.set()
            await updater
    deps.metrics.exits.labels(reporter.job.command, exit_label(run.exit_code)).inc()
    return run, command_line

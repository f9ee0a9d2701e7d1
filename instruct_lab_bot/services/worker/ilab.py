"""Run `ilab data generate` for a job: its output streamed into the log file and into the
progress the check run shows, within the job's time limit and cancel."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from instruct_lab_bot.adapters.git import CheckoutResult
from instruct_lab_bot.adapters.runner import RunLimits, RunResult
from instruct_lab_bot.adapters.sandbox import ilab_command
from instruct_lab_bot.adapters.tracing import span
from instruct_lab_bot.core.ilab import GenerateRun, generate_run
from instruct_lab_bot.core.job_outcome import exit_label
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.services.worker import redis_calls
from instruct_lab_bot.services.worker.deps import WorkerDeps
from instruct_lab_bot.services.worker.log_file import CappedLog
from instruct_lab_bot.services.worker.reporting import Reporter
from instruct_lab_bot.services.worker.workspace import Workspace


class JobFailed(Exception):
    """A failure to report on the PR as-is (its message is written for contributors)."""


def line_sink(
    progress: Progress, log_file: CappedLog, redactor: Redactor
) -> Callable[[str, str], None]:
    """Each output line, redacted, to the log file and to the progress parser: the log, the
    check run's tail and stage, and the error text never see a secret ilab printed."""

    def sink(_stream: str, line: str) -> None:
        line = redactor.redact(line)
        log_file.write_line(line)
        progress.feed(line)

    return sink


def plan_generate(deps: WorkerDeps, checkout: CheckoutResult, workspace: Workspace) -> GenerateRun:
    """The job's `ilab data generate` for the worker's ilab (its profile)."""
    return generate_run(
        deps.ilab.profile, deps.settings, checkout.path, checkout.base_ref, workspace.out_dir
    )


async def run_generate(
    deps: WorkerDeps,
    reporter: Reporter,
    checkout: CheckoutResult,
    workspace: Workspace,
    progress: Progress,
    cancel: asyncio.Event | None,
) -> RunResult:
    """Run ilab while `reporter` follows its progress; JobFailed if it cannot start."""
    settings = deps.settings
    planned = plan_generate(deps, checkout, workspace)
    argv = planned.argv
    await redis_calls.best_effort(
        deps.queue.update_job(
            reporter.job.id, teacher_model=planned.teacher_model, pipeline=planned.pipeline
        )
    )
    limits = RunLimits(timeout=settings.job_timeout, kill_grace=settings.kill_grace)
    stop_updates = asyncio.Event()
    updater = asyncio.create_task(reporter.follow(progress, stop_updates))
    with CappedLog(workspace.log_path, settings.log_limit) as log_file:
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
    return run

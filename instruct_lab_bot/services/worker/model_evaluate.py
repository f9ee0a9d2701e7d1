"""`test`'s branch evaluation: `ilab model evaluate --benchmark mt_bench_branch` of the trained
model against the base model, judged by the judge model the admin configured
(`ILAB_BOT_TEST_JUDGE_MODEL`, a model on the test workers: ilab serves the judge itself).

It runs after `test`'s own servers are stopped (ilab serves each model again), in the sandbox,
on the PR's checkout (the skills changed between the base branch and the head). Both releases
exit 0 even when the evaluation failed, so success is the report on stdout
(`core.eval_report`). Knowledge (`mmlu_branch`) needs the generate job's task files and is not
run here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from instruct_lab_bot.adapters.runner import RunLimits
from instruct_lab_bot.adapters.sandbox import ilab_command, process_runner
from instruct_lab_bot.core.chat_output import strip_ansi
from instruct_lab_bot.core.eval_report import parse_eval_report
from instruct_lab_bot.core.ilab import EvalParams, evaluate_argv
from instruct_lab_bot.core.jobs import Job
from instruct_lab_bot.core.model_test import Evaluation, evaluation_from
from instruct_lab_bot.core.progress import error_in
from instruct_lab_bot.services.worker.deps import WorkerDeps

BENCHMARK = "mt_bench_branch"
MAX_OUTPUT = 1024 * 1024  # characters of ilab's output kept to read the report from


async def evaluate(
    deps: WorkerDeps,
    job: Job,
    *,
    models: tuple[str, str],
    checkout: Path,
    workspace: Path,
    cancel: asyncio.Event | None,
) -> Evaluation | None:
    """The evaluation of `models` (trained, base), or None when no judge is configured."""
    settings = deps.settings
    if not settings.test_judge_model:
        return None
    out_dir = workspace / "evaluation"
    await asyncio.to_thread(out_dir.mkdir, exist_ok=True)
    params = EvalParams(
        BENCHMARK,
        model=models[0],
        base_model=models[1],
        output_dir=out_dir,
        judge_model=settings.test_judge_model,
        taxonomy_path=checkout,
        branch="HEAD",  # the checkout is detached at the PR head
        base_branch=f"origin/{job.base_branch}",
    )
    argv = evaluate_argv(deps.ilab.profile, settings.ilab_command, params)
    command = ilab_command(settings, argv, workspace=workspace, cwd=checkout)
    output: list[str] = []  # stdout: the report (and, on a failure, the library's message)
    size = 0

    def collect(stream: str, line: str) -> None:
        nonlocal size
        if stream == "stdout" and size < MAX_OUTPUT:
            size += len(line) + 1
            output.append(deps.redactor.redact(strip_ansi(line)))

    result = await process_runner(settings)(
        command.argv,
        cwd=checkout,
        env=command.env,
        on_line=collect,
        limits=RunLimits(timeout=settings.job_timeout, kill_grace=settings.kill_grace),
        cancel=cancel,
    )
    report = parse_eval_report("\n".join(output))
    if result.outcome != "exited":
        return evaluation_from(BENCHMARK, None, f"`ilab model evaluate` {result.outcome}")
    return evaluation_from(BENCHMARK, report, _last_words(output))


def _last_words(lines: list[str]) -> str:
    """ilab's error line, else its last non-empty line (the evaluation library's message)."""
    plain = [line.strip() for line in lines if line.strip()]
    errors = [found for line in plain if (found := error_in(line))]
    return (errors or plain or [""])[-1][:500]

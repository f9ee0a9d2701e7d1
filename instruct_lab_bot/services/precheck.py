"""`precheck`: ask the current model every seed question, next to the contributor's answer.

One `ilab model chat --quick-question` subprocess per question, a bounded number at a time
(the argv and prompt are built in `core.precheck`), all within one overall deadline
(`precheck_deadline`, never past the job timeout): questions still waiting or running when it
passes are reported as not asked. The PR's YAML is read with the validator's bounded loader
and at most MAX_SEED_QUESTIONS questions a file are asked (validation refuses more).
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import yaml

from instruct_lab_bot.adapters.runner import RunLimits
from instruct_lab_bot.adapters.sandbox import ilab_command, process_runner
from instruct_lab_bot.core.chat_output import plain_chat, strip_ansi
from instruct_lab_bot.core.ilab import CHAT_ENV, IlabProfile, chat_argv
from instruct_lab_bot.core.messages import precheck as wording
from instruct_lab_bot.core.precheck import Answer, Seed, chat_model, prompt
from instruct_lab_bot.core.progress import error_in
from instruct_lab_bot.core.settings import Settings
from instruct_lab_bot.core.validation import (
    MAX_SEED_QUESTIONS,
    YamlRefused,
    load_bounded,
)

MAX_ANSWER = 64 * 1024
MAX_YAML_BYTES = 1024 * 1024  # the largest ILAB_BOT_VALIDATION_MAX_FILE_BYTES allows
QUESTION_TIMEOUT = 600.0


def read_seeds(root: Path, files: Sequence[str]) -> list[Seed]:
    """Seed questions of the changed qna.yaml files (skills: seed_examples; knowledge:
    questions_and_answers inside each seed example, with its context)."""
    seeds: list[Seed] = []
    for path in files:
        target = (root / path).resolve()
        if not target.is_relative_to(root.resolve()) or not target.is_file():
            continue
        try:
            if target.stat().st_size > MAX_YAML_BYTES:
                continue
            data = load_bounded(target.read_text(encoding="utf-8"), max_bytes=MAX_YAML_BYTES)
        except (YamlRefused, UnicodeDecodeError, OSError):
            continue
        seeds += _file_seeds(path, data)[:MAX_SEED_QUESTIONS]
    return seeds


def seeds_in_text(path: str, text: str) -> list[Seed]:
    """The seeds of one qna.yaml's text ([] when it does not read as YAML within bounds)."""
    try:
        return _file_seeds(path, load_bounded(text, max_bytes=MAX_YAML_BYTES))
    except YamlRefused:
        return []


def _file_seeds(path: str, data: object) -> list[Seed]:
    seeds: list[Seed] = []
    examples = data.get("seed_examples") if isinstance(data, dict) else None
    for example in examples if isinstance(examples, list) else ():
        if not isinstance(example, dict):
            continue
        context = str(example.get("context") or "")
        pairs = example.get("questions_and_answers")
        if isinstance(pairs, list):
            seeds += [
                Seed(path, str(pair["question"]), str(pair.get("answer") or ""), context)
                for pair in pairs
                if isinstance(pair, dict) and pair.get("question")
            ]
        elif example.get("question"):
            seeds.append(
                Seed(path, str(example["question"]), str(example.get("answer") or ""), context)
            )
    return seeds


async def ask(
    settings: Settings,
    seed: Seed,
    *,
    cwd: Path,
    workspace: Path,
    cancel: asyncio.Event | None,
    profile: IlabProfile,
) -> Answer:
    stdout: list[str] = []
    stderr: list[str] = []
    size = 0

    def collect(stream: str, line: str) -> None:
        nonlocal size
        if size > MAX_ANSWER:
            return
        size += len(line)
        (stdout if stream == "stdout" else stderr).append(line)

    try:
        argv = chat_argv(profile, settings, prompt(seed, settings.precheck_context))
        command = ilab_command(settings, argv, workspace=workspace, cwd=cwd, extra_env=CHAT_ENV)
        result = await process_runner(settings)(
            command.argv,
            cwd=cwd,
            env=command.env,
            on_line=collect,
            cancel=cancel,
            limits=RunLimits(
                timeout=min(settings.job_timeout, QUESTION_TIMEOUT), kill_grace=settings.kill_grace
            ),
        )
    except OSError as exc:
        return Answer(seed.path, seed.question, seed.answer, "", f"cannot start ilab: {exc}")
    chat = plain_chat("\n".join(stdout))
    if result.outcome != "exited" or result.exit_code != 0:
        reason = {"timed_out": "timed out", "cancelled": "cancelled"}.get(
            result.outcome, f"ilab exited with code {result.exit_code}"
        )
        detail = _last_words(stderr) or _last_words(stdout)
        return Answer(seed.path, seed.question, seed.answer, "", f"{reason}: {detail}".strip())
    model = chat.model or chat_model(settings.precheck_args)
    with_context = settings.precheck_context and bool(seed.context.strip())
    return Answer(
        seed.path, seed.question, seed.answer, chat.text, model=model, with_context=with_context
    )


def _last_words(lines: Sequence[str]) -> str:
    """ilab's own error line (0.26 prints it with ANSI codes), else its last non-empty line."""
    plain = [strip_ansi(line).strip() for line in lines]
    plain = [line for line in plain if line]
    errors = [line for line in plain if error_in(line)]
    return (errors or plain or [""])[-1][:500]


async def ask_all(
    settings: Settings,
    seeds: Sequence[Seed],
    *,
    cwd: Path,
    workspace: Path,
    cancel: asyncio.Event | None,
    profile: IlabProfile,
) -> list[Answer]:
    """Every seed's answer, a bounded number at a time, within the overall deadline."""
    slots = asyncio.Semaphore(settings.precheck_concurrency)
    deadline = min(settings.precheck_deadline, settings.job_timeout)
    stop = asyncio.Event()  # set when the deadline passes or the job is cancelled
    timer = asyncio.get_running_loop().call_later(deadline, stop.set)
    relay = asyncio.create_task(_relay(cancel, stop)) if cancel is not None else None

    def unasked(seed: Seed) -> Answer:
        cancelled = cancel is not None and cancel.is_set()
        why = wording.PRECHECK_CANCELLED if cancelled else wording.not_asked(deadline)
        return Answer(seed.path, seed.question, seed.answer, "", why)

    async def one(seed: Seed) -> Answer:
        async with slots:
            if stop.is_set():
                return unasked(seed)
            answer = await ask(
                settings, seed, cwd=cwd, workspace=workspace, cancel=stop, profile=profile
            )
            return unasked(seed) if stop.is_set() and not answer.answer else answer

    try:
        return list(await asyncio.gather(*(one(seed) for seed in seeds)))
    finally:
        timer.cancel()
        if relay is not None:
            relay.cancel()


async def _relay(cancel: asyncio.Event, stop: asyncio.Event) -> None:
    await cancel.wait()
    stop.set()


def write_results(out_dir: Path, answers: Sequence[Answer]) -> None:
    """precheck.yaml (for tools) and precheck.html (for people), side by side per file."""
    (out_dir / "precheck.yaml").write_text(
        yaml.safe_dump([asdict(a) for a in answers], allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    rows = "\n".join(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
            *(html.escape(v) for v in (a.path, a.question, a.expected, a.answer or a.error))
        )
        for a in answers
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>precheck</title>"
        "<style>body{font-family:sans-serif}td{vertical-align:top;border-top:1px solid #ccc;"
        "padding:4px;white-space:pre-wrap}</style>"
        "<table><tr><th>file</th><th>question</th><th>contributor's answer</th>"
        f"<th>model's answer</th></tr>{rows}</table>"
    )
    (out_dir / "precheck.html").write_text(page, encoding="utf-8")

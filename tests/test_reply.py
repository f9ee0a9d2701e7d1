"""The result reply a reviewer acts on: counts per leaf and file, the spread preview, what ran,
the change since the PR's previous run, ilab's own failure words, plain chat text."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

from instruct_lab_bot.core import messages
from instruct_lab_bot.core.chat_output import plain_chat
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages import JobResult
from instruct_lab_bot.core.messages.precheck import precheck_tables
from instruct_lab_bot.core.outputs import Count
from instruct_lab_bot.core.precheck import Answer, Seed, chat_model, prompt
from instruct_lab_bot.core.progress import Progress
from instruct_lab_bot.core.redaction import Redactor
from instruct_lab_bot.core.run_compare import (
    leaf_counts_json,
    previous_generate,
    sample_change,
)
from tests.fixtures.example_reply import EXAMPLE_JOB, HAIKU, example_reply

ROOT = Path(__file__).resolve().parent.parent


def test_reply_from_real_026_outputs_shows_what_a_reviewer_needs(tmp_path: Path) -> None:
    body = example_reply(tmp_path)
    assert "**Run:** ilab 0.26.1 · teacher model `mistralai/Mixtral-8x7B-Instruct-v0.1`" in body
    assert "pipeline `simple` · took 6m 52s" in body
    assert "**15** samples generated (compared with the previous run on this PR" in body
    assert "+6/−2 samples)" in body
    assert "| compositional\\_skills\\_writing\\_poetry\\_haiku | 15 |" in body
    preview = re.findall(r"^\| \d \| (.*?) \| ", body, re.M)
    assert len(preview) == 5 and len(set(preview)) == 5  # one per seed, not the first rows
    assert "| Seed question | Generated question | Answer |" in body
    assert "<script>" not in body and "\\<script\\>" in body
    assert "checkpoints" not in body and "knowledge" not in body
    assert "ilab data generate --taxonomy-path" in body and "--api-key \\*\\*\\*" not in body
    assert "/view/" in body and "/files/index.html" in body


def test_docs_example_reply_is_what_the_renderer_writes() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from render_example_reply import render  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    written = (ROOT / "docs" / "example-reply.md").read_text(encoding="utf-8")
    assert written == render(), "run: python scripts/render_example_reply.py"


def _job(job_id: str, created: float, **fields: Any) -> Job:
    base: dict[str, Any] = {
        "command": "generate",
        "owner": "o",
        "repo": "r",
        "pr_number": 1,
        "requester": "a",
        "installation_id": 1,
    }
    return Job(id=job_id, created_at=created, **{**base, **fields})


def test_previous_run_is_the_latest_earlier_success_of_the_same_pr() -> None:
    now = time.time()
    current = _job("cur", now)
    jobs = [
        _job("old", now - 300, state=State.SUCCEEDED, generated=10, leaf_counts='{"a":10}'),
        _job("prev", now - 100, state=State.SUCCEEDED, generated=12, leaf_counts='{"a":8,"b":4}'),
        _job("failed", now - 50, state=State.FAILED),
        _job("pre", now - 40, state=State.SUCCEEDED, command="precheck"),
        _job("other-pr", now - 30, state=State.SUCCEEDED, generated=3, pr_number=2),
        _job("later", now + 10, state=State.SUCCEEDED, generated=1),
        current,
    ]
    previous = previous_generate(jobs, current)
    assert previous is not None and previous.id == "prev"
    change = sample_change(previous, [Count("a", 10), Count("c", 2)], 12)
    assert (change.added, change.removed) == (4, 4)  # a +2, c +2, b −4
    assert leaf_counts_json([Count("a", 10)]) == '{"a":10}'
    cut = _job("x", now, state=State.SUCCEEDED, generated=20, leaf_counts="{cut")
    by_total = sample_change(cut, [Count("a", 15)], 15)  # unreadable per-leaf counts: totals
    assert (by_total.added, by_total.removed) == (0, 5)
    assert previous_generate([current], current) is None


def test_failure_says_why_in_ilabs_words_even_after_a_progress_bar() -> None:
    """Tried with real 0.26.1 and a teacher answering 500: the reason followed a tqdm bar on
    the same line, and the reply said only "ilab exited with code 1"."""
    redactor = Redactor(["sk-teacher-key-0123456789"])
    progress = Progress()
    output = (
        "Map (num_proc=8): 100%|##########| 5/5 [00:01<00:00,  4.1 examples/s]\r"
        "Generating: 40%|####      | 2/5 [00:02<00:03]"
        "\x1b[31mfailed to generate data with exception: PipelineBlockError(<class "
        "'instructlab.sdg.blocks.llmblock.LLMBlock'>/gen_skill_freeform): Error code: 500 - "
        "{'error': 'teacher down', 'key': 'sk-teacher-key-0123456789'}\x1b[0m\n"
    )
    for segment in re.split(r"\r|\n", output):
        if segment:
            progress.feed(redactor.redact(segment))
    assert progress.error.startswith("PipelineBlockError(")
    assert "Error code: 500" in progress.error and "teacher down" in progress.error
    assert "sk-teacher-key" not in progress.error and "\x1b" not in progress.error
    job = EXAMPLE_JOB
    result = JobResult(state=State.FAILED, duration=30, exit_code=1, error=progress.error)
    body = messages.result_comment(job, result)
    assert "Error code: 500" in body
    check = messages.check_run_completed(job, result)
    output_field = check["output"]
    assert isinstance(output_field, dict)
    assert "Error code: 500" in output_field["title"] and len(output_field["title"]) <= 255


def test_chat_answers_become_plain_text() -> None:
    boxed = (
        "\x1b[1m╭──────────────────────── granite-7b-lab ────────────────────────╮\x1b[0m\n"
        "│ Silent flakes descend,                                          │\n"
        "│ \x1b[32mblanketing\x1b[0m the sleeping town │\n"
        "╰──────────────────────────────────────── elapsed 0.006 seconds ─╯\n"
    )
    chat = plain_chat(boxed)
    assert chat.text == "Silent flakes descend,\nblanketing the sleeping town"
    assert chat.model == "granite-7b-lab"
    plain = plain_chat("Hello from mock. Hello\nfrom mock.")  # 0.18 / 0.26 with -nd
    assert plain.text == "Hello from mock. Hello\nfrom mock." and plain.model == ""


def test_precheck_asks_without_the_seeds_context_unless_told() -> None:
    seed = Seed("knowledge/x/qna.yaml", "What is X?", "X is...", context="X is a thing.")
    assert prompt(seed) == "What is X?"
    assert prompt(seed, with_context=True) == "X is a thing.\n\nWhat is X?"


def test_leaf_seed_fixture_is_what_the_example_uses() -> None:
    assert len(HAIKU.seeds) == 5


def test_precheck_reply_names_the_model_and_aligns_one_row_per_question() -> None:
    answers = [
        Answer("skills/a/qna.yaml", f"Q{n}?", f"Mine {n}\nline 2", f"Model {n}", model="granite-7b")
        for n in range(3)
    ]
    answers.append(Answer("skills/a/qna.yaml", "Q3?", "Mine 3", "", error="timed out"))
    lines = precheck_tables(answers)
    text = "\n".join(lines)
    assert "Answers from `granite-7b` (each question asked alone" in text
    rows = [line for line in lines if re.match(r"\| Q\d", line)]
    assert len(rows) == 4 and all(row.count(" | ") == 2 for row in rows)
    assert rows[0] == "| Q0? | Mine 0<br>line 2 | Model 0 |"
    assert chat_model(["--endpoint-url", "http://x/v1", "-m", "granite-7b"]) == "granite-7b"
    assert chat_model(["--model=merlinite"]) == "merlinite" and chat_model([]) == ""

"""`test`, the pure part: which model, the scores, the report and its texts."""

from __future__ import annotations

import json
import time

from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.core.messages import JobResult, result_summary
from instruct_lab_bot.core.messages.model_test import (
    comparison_tables,
    no_model,
    progress_stage,
    summary_line,
)
from instruct_lab_bot.core.model_test import (
    Evaluation,
    ModelTestReport,
    NoModel,
    SeedComparison,
    model_argument,
    model_to_test,
    similarity,
)
from instruct_lab_bot.core.pages.model_test_html import render_test_html
from tests.fixtures.bot import BOT_NAME


def _job(job_id: str, command: str, state: State, created: float) -> Job:
    return Job(
        id=job_id,
        command=command,
        installation_id=1,
        owner="o",
        repo="r",
        pr_number=1,
        requester="u",
        head_sha="a" * 40,
        state=state,
        created_at=created,
    )


def test_the_model_argument() -> None:
    assert model_argument(()) == ""
    assert model_argument(("--model", "j1")) == "j1"
    assert model_argument(("--model=j1",)) == "j1"
    for bad in (("j1",), ("--model",), ("--model=",), ("--model", "a", "b"), ("--from", "x")):
        assert model_argument(bad) is None, bad


def test_the_newest_trained_model_or_the_named_one_of_this_pr() -> None:
    now = time.time()
    jobs = [
        _job("t1", "train", State.SUCCEEDED, now - 30),
        _job("t2", "train", State.SUCCEEDED, now - 20),
        _job("t3", "train", State.FAILED, now - 10),
        _job("g1", "generate", State.SUCCEEDED, now - 40),
    ]
    found = model_to_test(jobs, ())
    assert isinstance(found, Job) and found.id == "t2"
    named = model_to_test(jobs, ("--model", "t1"))
    assert isinstance(named, Job) and named.id == "t1"
    assert model_to_test(jobs, ("--model", "t3")) is NoModel.NOT_THIS_PR  # failed
    assert model_to_test(jobs, ("--model", "g1")) is NoModel.NOT_THIS_PR  # not a train job
    assert model_to_test(jobs, ("--model", "other-prs-job")) is NoModel.NOT_THIS_PR
    assert model_to_test(jobs[2:], ()) is NoModel.NONE_TRAINED
    assert model_to_test(jobs, ("oops",)) is NoModel.BAD_ARGS


def test_the_refusals_say_what_to_run() -> None:
    none = no_model(NoModel.NONE_TRAINED, BOT_NAME)
    assert f"`@{BOT_NAME} train`" in none and "generate" in none
    other = no_model(NoModel.NOT_THIS_PR, BOT_NAME, "x`y")
    assert "not a successful `train` job of this pull request" in other and "x\\`y" in other


def test_rouge_l_scores_closeness() -> None:
    reference = "The capital of France is Paris."
    assert similarity(reference, reference) == 1.0
    assert similarity(reference, "Paris is the capital of France.") > similarity(
        reference, "I do not know."
    )
    assert similarity(reference, "") == 0.0
    assert similarity("", "anything") == 0.0
    assert similarity("word " * 50_000, "word " * 50_000) == 1.0  # cut: bounded work


def _report() -> ModelTestReport:
    answers = (
        SeedComparison(
            "a/qna.yaml", "Q1?", "Paris is the capital.", "No idea.", "Paris is the capital."
        ),
        SeedComparison("a/qna.yaml", "Q2?", "Blue.", "Blue.", "Blue."),
        SeedComparison("b/qna.yaml", "Q3 | pipe?", "Yes.", "Yes indeed.", "No.", trained_error=""),
        SeedComparison("b/qna.yaml", "Q4?", "Four.", "", "Four.", base_error="timed out"),
    )
    return ModelTestReport("train-1", "granite-7b", "train-1/model", answers)


def test_the_report_counts_and_renders() -> None:
    report = _report()
    assert [a.winner for a in report.answers] == ["trained", "tie", "base", ""]
    assert report.compared == 3
    assert (
        summary_line(report)
        == "Trained model closer on 1 of 3 questions (base closer on 1, 1 tie)."
    )
    text = "\n".join(comparison_tables(report))
    assert "**`a/qna.yaml`**" in text and "**`b/qna.yaml`**" in text
    assert "| Question | Contributor's answer | Base model | Trained model |" in text
    assert "Q3 \\| pipe?" in text  # a pipe cannot break the table
    assert "⚠️ timed out" in text and "1.00 / 1.00" in text
    data = json.loads(report.to_json())
    assert data["summary"] == {
        "questions": 4,
        "compared": 3,
        "trained_closer": 1,
        "base_closer": 1,
        "ties": 1,
    }
    assert data["answers"][0]["trained_rouge_l"] == 1.0
    assert progress_stage(2, 9) == "Question 3 of 9"


def test_model_output_is_escaped_and_cut() -> None:
    hostile = "<script>alert(1)</script> [x](http://evil) @someone " + "long " * 500
    answers = (SeedComparison("a/qna.yaml", "Q?", "A.", hostile, hostile),)
    report = ModelTestReport("t", "b", "m", answers, Evaluation("mt_bench_branch", error="<b>"))
    text = "\n".join(comparison_tables(report))
    assert "<script>" not in text and "](http://evil)" not in text
    assert max(len(line) for line in text.splitlines()) < 2000
    page = render_test_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_the_result_reply_holds_the_table() -> None:
    job = _job("j", "test", State.SUCCEEDED, time.time())
    result = JobResult(state=State.SUCCEEDED, duration=3.0, model_test=_report())
    body = result_summary(job, result, for_comment=True)
    assert "`test` succeeded" in body and "Trained model closer on 1 of 3 questions" in body

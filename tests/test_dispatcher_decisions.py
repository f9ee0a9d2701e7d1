"""The dispatcher's decisions, without Redis or GitHub: which handler a command goes to, which
gate refuses a job, which job a retry re-runs, what a cancel or a push stops, what a
pull-request or check-run event sets off (`core.dispatch_rules`, `core.command_table`)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from instruct_lab_bot.core.command_table import (
    COMMAND_TABLE,
    GPU,
    GPU_COMMANDS,
    CommandSpec,
    Handler,
    lookup,
    spec_for_job,
)
from instruct_lab_bot.core.comment_parser import parse_commands
from instruct_lab_bot.core.dispatch_rules import (
    PullRequestPlan,
    Refusal,
    Stop,
    check_run_asks_retry,
    job_id_for,
    jobs_to_stop,
    pull_request_plan,
    refusal_before_files,
    refusal_for_files,
    retry_source,
    wants_welcome,
)
from instruct_lab_bot.core.jobs import Job, State
from instruct_lab_bot.services.dispatcher.commands import CommandHandlers

GENERATE = COMMAND_TABLE[1]
NO_GATES = CommandSpec("note", "leave a note", Handler.START_JOB, restricted=False, job_kind="note")


def job(number: int, state: State, sha: str = "a" * 40, command: str = "generate") -> Job:
    return Job(
        id=f"job{number}",
        created_at=1.0,
        command=command,
        installation_id=1,
        owner="o",
        repo="r",
        pr_number=7,
        requester="alice",
        head_sha=sha,
        state=state,
    )


# -- routing ------------------------------------------------------------------------------


def test_every_handler_of_the_table_has_a_dispatcher_method() -> None:
    none = cast(Any, None)
    handlers = CommandHandlers(none, none, none, none).handlers
    assert set(handlers) == set(Handler)
    assert {spec.handler for spec in COMMAND_TABLE} <= set(handlers)


def test_commands_route_by_table_lookup() -> None:
    routed = {
        c.name: c.spec.handler if c.spec else None
        for c in parse_commands(
            "@bot HELP\n@bot generate\n@bot precheck\n@bot status\n@bot retry\n@bot cancel\n"
            "@bot generat",
            "bot",
        )
    }
    assert routed == {
        "help": Handler.HELP,
        "generate": Handler.START_JOB,
        "precheck": Handler.START_JOB,
        "status": Handler.STATUS,
        "retry": Handler.RETRY,
        "cancel": Handler.CANCEL,
        "generat": None,
    }


def test_job_rows_name_their_job_and_worker() -> None:
    for spec in COMMAND_TABLE:
        assert spec.queues_job is (spec.handler is Handler.START_JOB)
    assert sorted(GPU_COMMANDS) == ["generate", "precheck"]
    assert {s.capability for s in COMMAND_TABLE if s.queues_job} == {
        GPU,
        "test",
    }  # `test` runs on a test worker
    assert spec_for_job("precheck") is lookup("precheck")
    assert spec_for_job("status") is None  # queues no job
    assert lookup("Cancel") is lookup("cancel") and lookup("frobnicate") is None


def test_job_ids_are_stable_per_delivery_and_line() -> None:
    first = job_id_for("d1", 3)
    assert first == job_id_for("d1", 3) and len(first) == 24
    assert (
        len({first, job_id_for("d1", 4), job_id_for("d2", 3), job_id_for("d1", "check-run")}) == 4
    )


# -- gates --------------------------------------------------------------------------------


def test_closed_pull_request_is_refused_first() -> None:
    refusal = refusal_before_files(GENERATE, is_open=False, labels=(), wanted=("ok",))
    assert refusal is Refusal.CLOSED


def test_required_labels() -> None:
    def gate(labels: tuple[str, ...], wanted: tuple[str, ...]) -> Refusal | None:
        return refusal_before_files(GENERATE, is_open=True, labels=labels, wanted=wanted)

    assert gate((), ("ready", "gpu-ok")) is Refusal.LABELS
    assert gate(("bug",), ("ready", "gpu-ok")) is Refusal.LABELS
    assert gate(("bug", "gpu-ok"), ("ready", "gpu-ok")) is None
    assert gate((), ()) is None  # no labels required
    assert refusal_before_files(NO_GATES, is_open=False, labels=(), wanted=("x",)) is None


def test_a_taxonomy_change_is_needed() -> None:
    assert refusal_for_files(GENERATE, []) is Refusal.NO_CHANGE
    assert refusal_for_files(GENERATE, ["compositional_skills/a/qna.yaml"]) is None
    assert refusal_for_files(NO_GATES, []) is None


# -- retry and cancel ---------------------------------------------------------------------


def test_retry_takes_the_newest_retryable_job() -> None:
    def source(*states: State) -> str | None:
        found = retry_source([job(n, state) for n, state in enumerate(states, 1)])
        return found.id if found else None

    assert source(State.FAILED, State.TIMED_OUT, State.SUCCEEDED) == "job2"
    assert source(State.DEAD, State.SUPERSEDED) == "job2"
    assert source(State.CANCELLED, State.RUNNING, State.QUEUED) == "job1"


@pytest.mark.parametrize("states", [[], [State.SUCCEEDED], [State.QUEUED, State.RUNNING]])
def test_nothing_to_retry(states: list[State]) -> None:
    assert retry_source([job(n, s) for n, s in enumerate(states)]) is None


def test_cancel_ends_queued_and_asks_running_to_stop() -> None:
    jobs = [
        job(1, State.QUEUED),
        job(2, State.RUNNING),
        job(3, State.SUCCEEDED),
        job(4, State.DEAD),
    ]
    assert jobs_to_stop(jobs) == [(jobs[0], Stop.END), (jobs[1], Stop.ASK)]
    assert jobs_to_stop([]) == []


def test_a_push_supersedes_only_queued_jobs_of_older_heads() -> None:
    old, new = "a" * 40, "b" * 40
    jobs = [job(1, State.QUEUED, old), job(2, State.QUEUED, new), job(3, State.RUNNING, old)]
    assert jobs_to_stop(jobs, new_sha=new, only_queued=True) == [(jobs[0], Stop.END)]


# -- events -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "plan"),
    [
        ("closed", PullRequestPlan(cancel=True)),
        ("synchronize", PullRequestPlan(supersede=True, validate=True)),
        ("opened", PullRequestPlan(welcome=True, validate=True)),
        ("reopened", PullRequestPlan(welcome=True, validate=True)),
        ("labeled", PullRequestPlan(welcome=True)),
        ("edited", PullRequestPlan()),
    ],
)
def test_what_a_pull_request_event_sets_off(action: str, plan: PullRequestPlan) -> None:
    assert pull_request_plan(action) == plan


def test_welcome_waits_for_a_required_label() -> None:
    assert wants_welcome(True, (), ())
    assert not wants_welcome(False, (), ())
    assert not wants_welcome(True, ("ready",), ("bug",))
    assert wants_welcome(True, ("ready",), ("bug", "ready"))


def test_only_rerun_and_the_retry_button_retry() -> None:
    assert check_run_asks_retry("rerequested", "")
    assert check_run_asks_retry("requested_action", "retry")
    assert not check_run_asks_retry("requested_action", "delete-everything")

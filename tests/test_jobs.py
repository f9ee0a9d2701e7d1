import pytest

from instruct_lab_bot.core.jobs import Job, State, TransitionError, can_transition, check_transition


def test_state_machine() -> None:
    assert can_transition(State.QUEUED, State.RUNNING)
    assert can_transition(State.RUNNING, State.SUCCEEDED)
    assert can_transition(State.RUNNING, State.QUEUED)  # handed back
    assert not can_transition(State.RUNNING, State.RUNNING)  # two workers, one job
    assert not can_transition(State.QUEUED, State.SUCCEEDED)
    for terminal in (s for s in State if s.terminal and s is not State.DEAD):
        assert not any(can_transition(terminal, other) for other in State)
    assert [s for s in State if can_transition(State.DEAD, s)] == [State.QUEUED]  # dlq requeue
    with pytest.raises(TransitionError):
        check_transition(State.SUCCEEDED, State.RUNNING)


def test_job_round_trips_through_redis_fields() -> None:
    job = Job(
        id="abc",
        command="generate",
        installation_id=7,
        owner="o",
        repo="r",
        pr_number=3,
        requester="alice",
        head_sha="f" * 40,
        state=State.RUNNING,
        check_run_id=99,
        progress=41.5,
        private=True,
    )
    fields = job.to_fields()
    assert all(isinstance(v, str) for v in fields.values())
    assert Job.from_fields(fields) == job
    assert job.artifact_key_prefix() == f"o/r/pr-3/{'f' * 40}/abc/"
